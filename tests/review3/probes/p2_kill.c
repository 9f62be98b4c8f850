/* Probe: SIGKILL of the application: what stays in /tmp. */
#include "common.h"
int main(void){
  int t0=count_tmp("mprouter-");
  pid_t c=fork(); if(c==0){ mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l)); mpr_router_start(r); pause(); _exit(0);}
  usleep(300000); kill(c,SIGKILL); waitpid(c,NULL,0);
  int t1=count_tmp("mprouter-");
  printf("tmp dirs before %d after SIGKILL %d: %s\n",t0,t1,t1==t0?"PASS":"FAIL (left behind)");
  return t1!=t0;
}
