// Socket options older libc headers lack, for the receive loop and the socket setup.
#pragma once

#include <sys/socket.h>

// Older libc headers lack these socket options (Linux 2.6.33 and 4.6).
#ifndef SO_RXQ_OVFL
#define SO_RXQ_OVFL 40
#endif
#ifndef SO_MEMINFO
#define SO_MEMINFO 55
#endif

#ifndef UDP_GRO
#define UDP_GRO 104  // Linux 5.0
#endif
