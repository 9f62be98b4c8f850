/* Probe: 24 forked senders x 20000 messages of varying size (8..300 B), each checked in order and byte
 * for byte; descriptors after stop equal those before start; ring vs frames by MPR_TRANSPORT. */
#include "common.h"
#define NS 24
#define NM 20000
typedef struct { unsigned id, next, bad; } st_t;
static st_t S[NS]; static unsigned total;
static void fill(unsigned char*b,unsigned id,unsigned i,size_t n){for(size_t k=0;k<n;k++) b[k]=(unsigned char)(id*31+i*7+k);}
static void on_msg(void*a,const void*d,size_t n){st_t*s=a;unsigned char b[400];size_t want=8+(s->next*13+s->id)%293; unsigned v;
  if(n!=want){s->bad++;} else {fill(b,s->id,s->next,n); memcpy(b,&s->next,4); memcpy(&v,d,4); if(memcmp(b,d,n)) s->bad++;} s->next++; total++;}
static int done(void*a){(void)a;return total>=NS*NM;}
int main(void){ setvbuf(stdout,NULL,_IONBF,0);
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l));
  int fd0=count_fds(); mpr_router_start(r);
  mpr_sender*s[NS]; mpr_receiver*rv[NS]; pid_t p[NS];
  for(unsigned i=0;i<NS;i++){ mpr_router_pipe(r,&s[i],&rv[i]); S[i].id=i; mpr_receiver_set_callback(rv[i],on_msg,&S[i]); }
  double t0=now();
  for(unsigned i=0;i<NS;i++){ p[i]=fork(); if(p[i]==0){ if(mpr_sender_start(s[i])) _exit(3); unsigned char b[400];
      for(unsigned k=0;k<NM;k++){ size_t n=8+(k*13+i)%293; fill(b,i,k,n); memcpy(b,&k,4); if(mpr_sender_send(s[i],b,n)) _exit(2);} _exit(mpr_sender_stop(s[i])?1:0);} }
  for(unsigned i=0;i<NS;i++) mpr_sender_free(s[i]);
  pump(l,60,done,NULL);
  int fails=0; for(unsigned i=0;i<NS;i++){int st; waitpid(p[i],&st,0); if(!WIFEXITED(st)||WEXITSTATUS(st)) fails++;}
  unsigned bad=0,short_=0; for(unsigned i=0;i<NS;i++){bad+=S[i].bad; if(S[i].next!=NM) short_++;}
  for(unsigned i=0;i<NS;i++) mpr_router_close_pipe(r,rv[i]);
  mpr_router_stop(r); int fd1=count_fds();
  printf("transport %s: %u msgs in %.2f s, bad %u, short pipes %u, worker failures %d, fds %d -> %d\n",getenv("MPR_TRANSPORT")?getenv("MPR_TRANSPORT"):"ring",total,now()-t0,bad,short_,fails,fd0,fd1);
  int ok=!bad&&!short_&&!fails&&fd0==fd1; printf("%s\n",ok?"PASS":"FAIL");
  mpr_router_free(r); mpr_fd_loop_free(l); return !ok;}
