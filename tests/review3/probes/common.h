#define _GNU_SOURCE
#include <mprouter/mprouter.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <poll.h>
#include <time.h>
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/stat.h>
static double now(void){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec/1e9;}
static int count_fds(void){int n=0;DIR*d=opendir("/proc/self/fd");struct dirent*e;while((e=readdir(d)))if(e->d_name[0]!='.')n++;closedir(d);return n-1;}
static void pump(mpr_fd_loop*l,double secs,int(*done)(void*),void*a){double end=now()+secs;while(now()<end&&!(done&&done(a))){struct pollfd p={mpr_fd_loop_fd(l),POLLIN,0};poll(&p,1,50);mpr_fd_loop_dispatch(l);}}
static int count_tmp(const char*pfx){int n=0;DIR*d=opendir("/tmp");struct dirent*e;while((e=readdir(d)))if(!strncmp(e->d_name,pfx,strlen(pfx)))n++;closedir(d);return n;}
