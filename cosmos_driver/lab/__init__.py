"""The local lab: real sshd and dockerd on this machine standing in for GPU hosts."""
