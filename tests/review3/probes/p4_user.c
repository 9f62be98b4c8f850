/* Probe: another user (uid 65534) with a valid sender string must not get in; after stop, the same
 * user squats the folder name with its own socket: the worker must get MPR_ECONNREFUSED and the squatter
 * must receive no descriptor (ring). */
#include "common.h"
#include <sys/socket.h>
#include <sys/un.h>
static unsigned got; static void on_msg(void*a,const void*d,size_t n){(void)a;(void)d;(void)n;got++;}
int main(void){ setvbuf(stdout,NULL,_IONBF,0);
  mpr_fd_loop*l; mpr_router*r; mpr_fd_loop_new(&l); mpr_router_new(&r,mpr_fd_loop_event_loop(l)); mpr_router_start(r);
  mpr_sender*s,*s2; mpr_receiver*rv,*rv2; mpr_router_pipe(r,&s,&rv); mpr_router_pipe(r,&s2,&rv2); mpr_receiver_set_callback(rv,on_msg,NULL);
  char str[512],str2[512]; mpr_sender_to_string(s,str,sizeof str); mpr_sender_to_string(s2,str2,sizeof str2);
  /* 1: worker as uid 65534 with the valid string */
  pid_t c=fork(); if(c==0){ if(setgid(65534)||setuid(65534)) _exit(9); mpr_sender*w; if(mpr_sender_from_string(&w,str)) _exit(8);
    int e=mpr_sender_start(w); printf("other user: start -> %d (%s)\n",e,mpr_strerror(e)); if(!e){e=mpr_sender_send(w,"x",1); printf("other user: send -> %d\n",e);} _exit(e==0?1:0);}
  int st; pump(l,3,NULL,NULL); waitpid(c,&st,0);
  mpr_router_stats rs; mpr_router_get_stats(r,&rs);
  printf("other user kept out: %s (msgs %u)\n",WEXITSTATUS(st)==0&&got==0?"PASS":"FAIL",got);
  /* 2: stop; uid 65534 squats the name */
  char name[256]; sscanf(str2,"mpr3:%255[^:]",name); char dir[300],path[320]; snprintf(dir,sizeof dir,"/tmp/%s",name); snprintf(path,sizeof path,"%s/s",dir);
  mpr_router_close_pipe(r,rv); mpr_router_stop(r);
  struct stat sb; printf("after stop: folder %s %s\n",dir,stat(dir,&sb)?"gone":"still there");
  int sp[2]; pipe(sp);
  pid_t q=fork(); if(q==0){ if(!getenv("SAMEUSER")&&(setgid(65534)||setuid(65534))) _exit(9); if(mkdir(dir,0777)){perror("squat mkdir");_exit(7);} chmod(dir,0777);
    int ls=socket(AF_UNIX,SOCK_STREAM,0); struct sockaddr_un a={.sun_family=AF_UNIX}; strncpy(a.sun_path,path,sizeof a.sun_path-1);
    if(bind(ls,(void*)&a,sizeof a)||listen(ls,4)){perror("squat bind");_exit(6);} chmod(path,0777); write(sp[1],"k",1);
    struct pollfd p={ls,POLLIN,0}; if(poll(&p,1,5000)<=0) _exit(5); int cs=accept(ls,NULL,NULL);
    int fds=0; size_t tot=0; double end=now()+3; while(now()<end){ char b[4096]; char cb[CMSG_SPACE(sizeof(int)*8)]; struct iovec io={b,sizeof b}; struct msghdr m={0}; m.msg_iov=&io; m.msg_iovlen=1; m.msg_control=cb; m.msg_controllen=sizeof cb;
      struct pollfd pp={cs,POLLIN,0}; if(poll(&pp,1,200)<=0) continue; ssize_t k=recvmsg(cs,&m,0); if(k<=0) break; tot+=k;
      for(struct cmsghdr*h=CMSG_FIRSTHDR(&m);h;h=CMSG_NXTHDR(&m,h)) if(h->cmsg_type==SCM_RIGHTS) fds++; }
    printf("squatter: received %zu bytes, %d descriptor messages\n",tot,fds); unlink(path); rmdir(dir); _exit(fds?1:0);}
  char k; read(sp[0],&k,1);
  pid_t w=fork(); if(w==0){ int e=mpr_sender_start(s2); printf("worker vs squatter: start -> %d (%s)\n",e,mpr_strerror(e)); _exit(e==MPR_ECONNREFUSED?0:1);}
  int sw,sq; waitpid(w,&sw,0); waitpid(q,&sq,0);
  printf("squat: worker %s, squatter %s\n",WEXITSTATUS(sw)?"FAIL":"PASS",WEXITSTATUS(sq)?"FAIL (got a descriptor or error)":"PASS");
  mpr_router_free(r); mpr_fd_loop_free(l); return 0;}
