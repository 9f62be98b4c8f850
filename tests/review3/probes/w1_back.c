/* Windows probe (wine): the way back. The parent queues control messages before the worker connects
 * (3 small, then 1 MiB ones until MPR_EAGAIN), and a cancel tag 7; the worker (this program again, string
 * on stdin) must take them whole and in order, see tag 7, report back, then get MPR_EPIPE from
 * mpr_sender_recv once the router has stopped (not MPR_ETIMEDOUT), and from send. Prints PASS/FAIL. */
#include <windows.h>
#include <mprouter/mprouter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static unsigned char big[(1<<20)];
static void fillbig(unsigned k){ for(size_t i=0;i<sizeof big;i++) big[i]=(unsigned char)(i*7+k); }
static int worker(void){
  char str[512]; if(!fgets(str,sizeof str,stdin)) return 10; str[strcspn(str,"\r\n")]=0;
  mpr_sender*s; if(mpr_sender_from_string(&s,str)) return 11; int e=mpr_sender_start(s); if(e){fprintf(stderr,"worker: start %d\n",e);return 12;}
  static unsigned char buf[(1<<20)+16]; size_t n; char res[256]; int bad=0; unsigned small=0, bigs=0;
  for(int i=0;i<3;i++){ e=mpr_sender_recv(s,buf,sizeof buf,&n,5); char want[16]; snprintf(want,16,"ctl%d",i); if(e||n!=strlen(want)||memcmp(buf,want,n)) bad++; else small++; }
  unsigned nbig=0; e=mpr_sender_recv(s,buf,sizeof buf,&n,5); if(!e&&n==4) memcpy(&nbig,buf,4); else bad++;
  for(unsigned k=0;k<nbig;k++){ e=mpr_sender_recv(s,buf,sizeof buf,&n,10); fillbig(k); if(e||n!=sizeof big||memcmp(buf,big,n)) {bad++; fprintf(stderr,"worker: big %u e=%d n=%zu\n",k,e,n);} else bigs++; }
  DWORD t0=GetTickCount(); uint64_t tag=0; while(GetTickCount()-t0<5000&&(tag=mpr_sender_cancelled(s))!=7) Sleep(1);
  snprintf(res,sizeof res,"small %u/3 big %u/%u bad %d tag %llu",small,bigs,nbig,bad,(unsigned long long)tag);
  mpr_sender_send(s,res,strlen(res)+1);
  /* now wait for the router to go: recv must say MPR_EPIPE within its timeout */
  DWORD t1=GetTickCount(); e=mpr_sender_recv(s,buf,sizeof buf,&n,8); DWORD dt=GetTickCount()-t1;
  int e2=mpr_sender_send(s,"x",1); int e3=mpr_sender_stop(s);
  fprintf(stderr,"worker: after router stop: recv %d (%s) after %lu ms, send %d, stop %d\n",e,mpr_strerror(e),(unsigned long)dt,e2,e3);
  mpr_sender_free(s);
  return (e==MPR_EPIPE && e3!=0) ? 0 : 20;
}
static char result[256]; static int got;
static void on_msg(void*a,const void*d,size_t n){(void)a; if(n<sizeof result){memcpy(result,d,n); result[n]=0;} got++;}
static void pump(mpr_fd_loop*l,DWORD ms,int*flag){ DWORD t0=GetTickCount(); while(GetTickCount()-t0<ms&&!(flag&&*flag)){ WaitForSingleObject((HANDLE)mpr_fd_loop_handle(l),50); mpr_fd_loop_dispatch(l);} }
int main(int argc,char**argv){
  if(argc>1&&!strcmp(argv[1],"--worker")) return worker();
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l)); if(mpr_router_start(r)){puts("FAIL: start");return 1;}
  mpr_sender*s; mpr_receiver*rv; mpr_router_pipe(r,&s,&rv); mpr_receiver_set_callback(rv,on_msg,NULL);
  int e=0; for(int i=0;i<3;i++){ char m[16]; snprintf(m,16,"ctl%d",i); e|=mpr_receiver_send(rv,m,strlen(m)); }
  /* how many 1 MiB messages fit: count them first in a separate pipe is not possible; queue a count after */
  unsigned nbig=3; /* 3 MiB + small: within the 4 MiB bound */
  e|=mpr_receiver_send(rv,&nbig,4);
  for(unsigned k=0;k<nbig;k++){ fillbig(k); e|=mpr_receiver_send(rv,big,sizeof big); }
  int eagain=mpr_receiver_send(rv,big,sizeof big); /* 4th MiB + 19 B > 4 MiB: must be MPR_EAGAIN */
  int emsg=mpr_receiver_send(rv,big,sizeof big+0); (void)emsg;
  int etoolong; { static unsigned char b2[(1<<20)+1]; etoolong=mpr_receiver_send(rv,b2,sizeof b2); }
  e|=mpr_receiver_cancel(rv,7);
  printf("parent: queue rc %d, 4th MiB -> %d (%s), 1 MiB+1 -> %d (%s)\n",e,eagain,mpr_strerror(eagain),etoolong,mpr_strerror(etoolong));
  char str[512]; mpr_sender_to_string(s,str,sizeof str); mpr_sender_free(s);
  SECURITY_ATTRIBUTES sa={sizeof sa,NULL,TRUE}; HANDLE rd,wr; CreatePipe(&rd,&wr,&sa,0); SetHandleInformation(wr,HANDLE_FLAG_INHERIT,0);
  STARTUPINFOA si={0}; si.cb=sizeof si; si.dwFlags=STARTF_USESTDHANDLES; si.hStdInput=rd; si.hStdOutput=GetStdHandle(STD_OUTPUT_HANDLE); si.hStdError=GetStdHandle(STD_ERROR_HANDLE);
  PROCESS_INFORMATION pi; char cmd[600]; char self[MAX_PATH]; GetModuleFileNameA(NULL,self,MAX_PATH); snprintf(cmd,sizeof cmd,"\"%s\" --worker",self);
  if(!CreateProcessA(NULL,cmd,NULL,NULL,TRUE,0,NULL,NULL,&si,&pi)){puts("FAIL: CreateProcess");return 1;}
  CloseHandle(rd); DWORD w; strcat(str,"\n"); WriteFile(wr,str,(DWORD)strlen(str),&w,NULL); CloseHandle(wr);
  pump(l,30000,&got);
  printf("parent: worker says: %s\n",got?result:"(nothing)");
  int after_send=0;
  mpr_router_close_pipe(r,rv); mpr_router_stop(r);
  DWORD wr2=WaitForSingleObject(pi.hProcess,15000); DWORD code=999; GetExitCodeProcess(pi.hProcess,&code);
  if(wr2!=WAIT_OBJECT_0) TerminateProcess(pi.hProcess,99);
  char want[128]; snprintf(want,sizeof want,"small 3/3 big %u/%u bad 0 tag 7",nbig,nbig);
  int ok = !e && eagain==MPR_EAGAIN && etoolong==MPR_EMSGSIZE && got && !strcmp(result,want) && code==0; (void)after_send;
  printf("worker exit %lu\n%s: way back on Windows\n",(unsigned long)code,ok?"PASS":"FAIL");
  mpr_router_free(r); mpr_fd_loop_free(l); return !ok;
}
