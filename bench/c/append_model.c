#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/mman.h>
#include <time.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#define PS 4096L
#define REC 128
#include <nmmintrin.h>
static inline uint32_t fcrc(const char*p){uint64_t c=0;for(int i=0;i<REC;i+=8)c=_mm_crc32_u64(c,*(const uint64_t*)(p+i));return (uint32_t)c;}
#include <stdint.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec+t.tv_nsec*1e-9;}

#define REC 128
static long N=1000000; static long RES; static char*map; static int fd;
static _Atomic long grown_pages=0, written_pages=0; static int K=8; static _Atomic int stop=0;
static char payload[REC];
static void*pretoucher(void*a){
  while(!atomic_load(&stop)){
    long g=atomic_load_explicit(&grown_pages,memory_order_relaxed);
    long w=atomic_load_explicit(&written_pages,memory_order_relaxed);
    if(g< w+K && (g+1)*PS<=RES){ if(ftruncate(fd,(g+1)*PS))abort(); madvise(map+g*PS,PS,MADV_POPULATE_WRITE); atomic_store_explicit(&grown_pages,g+1,memory_order_release);} 
    else __builtin_ia32_pause();
  }
  return 0;
}
double run_mmap(const char*path,int pre){
  unlink(path); fd=open(path,O_RDWR|O_CREAT|O_TRUNC,0644);
  long frame=((8+REC)+7)&~7L; RES=((N*frame)/PS+2)*PS;
  map=mmap(NULL,RES,PROT_READ|PROT_WRITE,MAP_SHARED,fd,0);
  atomic_store(&grown_pages,0); atomic_store(&written_pages,0); atomic_store(&stop,0);
  pthread_t th; if(pre) pthread_create(&th,0,pretoucher,0);
  double t0=now(); long pos=0, size=0;
  for(long i=0;i<N;i++){
    long end=pos+frame;
    if(pre){ long need=(end+PS-1)/PS; atomic_store_explicit(&written_pages,pos/PS,memory_order_relaxed); while(atomic_load_explicit(&grown_pages,memory_order_acquire)<need) __builtin_ia32_pause(); }
    else { while(end>size){ size+=PS; if(ftruncate(fd,size))abort(); } }
    uint32_t c=fcrc(payload);
    memcpy(map+pos+8,payload,REC);
    uint64_t h=((uint64_t)c<<32)|REC; __atomic_store_n((uint64_t*)(map+pos),h,__ATOMIC_RELEASE);
    pos=end;
  }
  double t=now()-t0;
  if(pre){atomic_store(&stop,1);pthread_join(th,0);}
  munmap(map,RES); close(fd); unlink(path);
  return t/N*1e9;
}
double run_buf(const char*path){
  unlink(path); FILE*f=fopen(path,"w"); static char buf[8192]; setvbuf(f,buf,_IOFBF,sizeof buf);
  double t0=now();
  for(long i=0;i<N;i++){ uint32_t c=fcrc(payload); uint64_t h=((uint64_t)c<<32)|REC; fwrite(&h,8,1,f); fwrite(payload,REC,1,f);} 
  fflush(f); double t=now()-t0; fclose(f); unlink(path); return t/N*1e9;
}
int main(int argc,char**argv){
  const char*dir=argv[1]; char p[256]; snprintf(p,sizeof p,"%s/pt.dat",dir); memset(payload,'x',REC);
  for(int r=0;r<3;r++){
    double a=run_mmap(p,0), b=run_mmap(p,1), c=run_buf(p);
    printf("%s: inline-grow %.0f ns  pretouch(K=%d) %.0f ns  stdio-buffered %.0f ns  | inline/buf %.2fx pretouch/buf %.2fx\n",dir,a,K,b,c,c/a,c/b);
  }
}
