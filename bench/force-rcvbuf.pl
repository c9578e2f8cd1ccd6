# Usage: perl force-rcvbuf.pl PID FD BYTES
# Sets SO_RCVBUFFORCE on socket FD of process PID (node:dgram cannot: it only
# uses SO_RCVBUF, which net.core.rmem_max caps) and prints the size granted.
# Takes a duplicate of the fd with pidfd_open/pidfd_getfd; needs root.
use strict;
use warnings;
use Socket qw(SOL_SOCKET SO_RCVBUF);

my ($pid, $fd, $bytes) = @ARGV;
my $SYS_pidfd_open = 434;   # the same number on every architecture
my $SYS_pidfd_getfd = 438;
my $SO_RCVBUFFORCE = 33;
my $pidfd = syscall($SYS_pidfd_open, $pid + 0, 0);
die "pidfd_open: $!\n" if $pidfd < 0;
my $copy = syscall($SYS_pidfd_getfd, $pidfd, $fd + 0, 0);
die "pidfd_getfd: $!\n" if $copy < 0;
open(my $socket, '+<&=', $copy) or die "fdopen: $!\n";
setsockopt($socket, SOL_SOCKET, $SO_RCVBUFFORCE, pack('i', $bytes)) or die "SO_RCVBUFFORCE: $!\n";
print unpack('i', getsockopt($socket, SOL_SOCKET, SO_RCVBUF)), "\n";
