/* Probe: the keys in a forked child. Pipe B's sender is freed in the parent before the fork; the child
 * scans every readable page of its memory for B's 16-byte key (kept here only XOR-masked). Mode
 * "fork" uses fork(), "raw" syscall(SYS_fork) (no pthread_atfork handlers: the portable build's limit). */
#include "common.h"
#include <sys/syscall.h>
#include <setjmp.h>
static sigjmp_buf jb; static void onsig(int s){(void)s;siglongjmp(jb,1);}
static volatile int skipped;
static unsigned char mk[16];
static int scan(void){ FILE*f=fopen("/proc/self/maps","r"); char line[512]; int hits=0;
  while(fgets(line,sizeof line,f)){ unsigned long a,b; char perm[8]; if(sscanf(line,"%lx-%lx %7s",&a,&b,perm)!=3||perm[0]!='r') continue;
    if(strstr(line,"[vvar]")||strstr(line,"[vsyscall]")) continue;
    if(sigsetjmp(jb,1)){skipped++;continue;}
    for(volatile unsigned char*p=(unsigned char*)a;p+16<=(volatile unsigned char*)b;p++){ int i=0; while(i<16&&p[i]==(unsigned char)(((volatile unsigned char*)mk)[i]^0x5a)) i++; if(i==16){hits++; fprintf(stderr,"child: key found at %p in %s",(void*)p,line);}}
} fclose(f); return hits;}
/* the secrets' pages are MADV_DONTDUMP ("dd" in smaps): count non-zero bytes in them */
static long dd_nonzero(void){ FILE*f=fopen("/proc/self/smaps","r"); char line[512]; unsigned long a=0,b=0; long nz=0; int pages=0;
  while(fgets(line,sizeof line,f)){ unsigned long x,y; if(sscanf(line,"%lx-%lx ",&x,&y)==2&&strchr(line,' ')&&line[8]!=':'){a=x;b=y;continue;}
    if(!strncmp(line,"VmFlags:",8)&&strstr(line," dd")&&strstr(line," rd")){pages++; if(sigsetjmp(jb,1)){skipped++;continue;} for(unsigned char*p=(unsigned char*)a;p<(unsigned char*)b;p++) if(*p) nz++;}}
  fclose(f); fprintf(stderr,"child: %d dontdump regions, %ld non-zero bytes, %d regions unreadable\n",pages,nz,skipped); return nz;}
static void __attribute__((noinline)) scrub(void){ volatile char big[65536]; memset((char*)big,0,sizeof big); }
int main(int argc,char**argv){ setvbuf(stdout,NULL,_IONBF,0); int raw=argc>1&&!strcmp(argv[1],"raw");
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l)); mpr_router_start(r);
  mpr_sender*a,*b; mpr_receiver*ra,*rb; mpr_router_pipe(r,&a,&ra); mpr_router_pipe(r,&b,&rb); if(getenv("SCRUB_AFTER_PIPE")) scrub();
  { char str[256]; mpr_sender_to_string(b,str,sizeof str); char*h=strrchr(str,':')+1;
    for(int i=0;i<16;i++){unsigned v; sscanf(h+2*i,"%2x",&v); mk[i]=(unsigned char)v^0x5a;} memset(str,0,sizeof str); }
  if(getenv("SCRUB_AFTER_STRING")) scrub();
  if(getenv("FAKEKEY")) for(int i=0;i<16;i++) mk[i]=(unsigned char)(0xa5+i*17);
  mpr_sender_free(b);
  if(getenv("SCRUB_BEFORE_FORK")) scrub();
  pid_t c=raw?(pid_t)syscall(SYS_fork):fork();
  if(c==0){ signal(SIGSEGV,onsig); signal(SIGBUS,onsig); int h=scan(); long nz=dd_nonzero(); _exit(h?1:nz?2:0); }
  int st; waitpid(c,&st,0); if(WIFSIGNALED(st)) printf("child died of signal %d\n",WTERMSIG(st));
  printf("%s: child exit %d (1 key found, 2 secret pages not zero) -> %s\n",raw?"syscall(SYS_fork)":"fork()",WEXITSTATUS(st),WEXITSTATUS(st)?"FAIL":"PASS");
  mpr_sender_free(a); mpr_router_close_pipe(r,ra); mpr_router_close_pipe(r,rb); mpr_router_stop(r); mpr_router_free(r); mpr_fd_loop_free(l); return 0;}
