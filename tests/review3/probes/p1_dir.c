/* Probe: the private socket directory: mode, owner, leftovers after stop and SIGKILL, fds after stop. */
#include "common.h"
int main(void){
  setvbuf(stdout,NULL,_IONBF,0); int t0=count_tmp("mprouter-");
  int fd0=count_fds();
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l));
  int rc=mpr_router_start(r); printf("start %d\n",rc);
  mpr_sender*s; mpr_receiver*rv; mpr_router_pipe(r,&s,&rv);
  char buf[1024]; mpr_sender_to_string(s,buf,sizeof buf); printf("string: %s\n",buf);
  printf("tmp dirs before %d during %d\n",t0,count_tmp("mprouter-"));
  char cmd[256]; snprintf(cmd,sizeof cmd,"ls -la /proc/%d/fd | grep -v ' /dev/pts'",getpid()); system(cmd);
  pid_t c=fork(); if(c==0){int e=mpr_sender_start(s); for(int i=0;i<100;i++) mpr_sender_send(s,"x",1); e|=mpr_sender_stop(s); _exit(e?1:0);}
  int st; waitpid(c,&st,0); printf("worker exit %d\n",WEXITSTATUS(st));
  pump(l,0.5,NULL,NULL);
  mpr_router_close_pipe(r,rv); mpr_sender_free(s);
  mpr_router_stop(r);
  printf("fds before %d after stop %d\n",fd0,count_fds());
  snprintf(cmd,sizeof cmd,"ls -la /proc/%d/fd",getpid()); system(cmd);
  printf("tmp dirs after stop %d\n",count_tmp("mprouter-"));
  mpr_router_free(r); mpr_fd_loop_free(l);
  return 0;
}
