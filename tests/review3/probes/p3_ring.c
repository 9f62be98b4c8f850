/* Probe: a hostile sender shrinks / grows its ring's shm object (found by /proc/self/fd), a bystander
 * keeps sending. Usage: p3_ring MODE   (MODE: shrink0 | shrinkhalf | huge). The router must survive,
 * the bystander's messages all arrive in order. */
#include "common.h"
#include <sys/mman.h>
#include <fcntl.h>
typedef struct { unsigned next, bad, lost; } st_t;
static void on_msg(void*a,const void*d,size_t n){st_t*s=a;unsigned v; if(n!=64){s->bad++;return;} memcpy(&v,d,4); if(v!=s->next) s->bad++; s->next=v+1;}
static void on_lost(void*a){((st_t*)a)->lost++;}
static void on_hmsg(void*a,const void*d,size_t n){(void)d;(void)n;((st_t*)a)->next++;}
static int find_shm(void){ /* the sender closed its descriptor: reopen the mapping via /proc/self/map_files */
  FILE*f=fopen("/proc/self/maps","r");char line[512];int r=-1;
  while(fgets(line,sizeof line,f)){ if(!strstr(line,"/dev/shm")&&!strstr(line,"(deleted)")) continue;
    fprintf(stderr,"map: %s",line); unsigned long a,b; sscanf(line,"%lx-%lx",&a,&b); char p[128]; snprintf(p,sizeof p,"/proc/self/map_files/%lx-%lx",a,b);
    int fd=open(p,O_RDWR); if(fd>=0&&r<0){r=fd;} }
  fclose(f); return r;}
static const char*mode; static st_t B={0};
static int bydone(void*a){(void)a;return B.next>=20000;}
int main(int argc,char**argv){ setvbuf(stdout,NULL,_IONBF,0); mode=argc>1?argv[1]:"shrink0";
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l)); mpr_router_start(r);
  mpr_sender*hs,*bs; mpr_receiver*hr,*br; mpr_router_pipe(r,&hs,&hr); mpr_router_pipe(r,&bs,&br);
  st_t H={0}; mpr_receiver_set_callback(hr,on_hmsg,&H); mpr_receiver_set_lost_callback(hr,on_lost,&H);
  mpr_receiver_set_callback(br,on_msg,&B); mpr_receiver_set_lost_callback(br,on_lost,&B);
  pid_t h=fork(); if(h==0){ int e=mpr_sender_start(hs); char m[64]={0}; for(int i=0;i<100;i++) mpr_sender_send(hs,m,64);
     int fd=find_shm(); if(fd<0){fprintf(stderr,"hostile: no shm fd found\n");_exit(3);} struct stat sb; fstat(fd,&sb); fprintf(stderr,"hostile: ring size %lld\n",(long long)sb.st_size);
     int tr;
     if(!strcmp(mode,"shrink0")) tr=ftruncate(fd,0); else if(!strcmp(mode,"shrinkhalf")) tr=ftruncate(fd,sb.st_size/2); else tr=ftruncate(fd,(off_t)1<<40);
     fprintf(stderr,"hostile: ftruncate -> %d\n",tr);
     if(!strcmp(mode,"huge")){ /* write garbage over the whole original object via pwrite */ char g[4096]; memset(g,0xff,sizeof g); for(off_t o=0;o<sb.st_size;o+=4096) pwrite(fd,g,4096,o);}
     signal(SIGBUS,SIG_DFL); for(int i=0;i<100;i++) mpr_sender_send(hs,m,64); /* may SIGBUS in our own mapping: our problem */
     mpr_sender_stop(hs); _exit(e);}
  pid_t b=fork(); if(b==0){ mpr_sender_start(bs); char m[64]={0}; for(unsigned i=0;i<20000;i++){memcpy(m,&i,4); if(mpr_sender_send(bs,m,64)) _exit(2); if(i%1000==0) usleep(2000);} _exit(mpr_sender_stop(bs)?1:0);}
  mpr_sender_free(hs); mpr_sender_free(bs);
  pump(l,15,bydone,NULL);
  int sh,sb2; waitpid(h,&sh,0); waitpid(b,&sb2,0); pump(l,0.3,NULL,NULL);
  mpr_router_stats s; mpr_router_get_stats(r,&s);
  printf("mode %s: hostile exit %s %d; hostile msgs %u lost %u; bystander got %u bad %u lost %u exit %d\n",mode,WIFSIGNALED(sh)?"sig":"code",WIFSIGNALED(sh)?WTERMSIG(sh):WEXITSTATUS(sh),H.next,H.lost,B.next,B.bad,B.lost,WEXITSTATUS(sb2));
  int ok = B.next==20000 && !B.bad && !B.lost;
  printf("%s\n",ok?"PASS":"FAIL");
  mpr_router_close_pipe(r,hr); mpr_router_close_pipe(r,br); mpr_router_stop(r); mpr_router_free(r); mpr_fd_loop_free(l); return !ok;}
