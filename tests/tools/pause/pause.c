/* The pod sandbox's process: holds the pod's namespaces open and does nothing else. Built with
 * `gcc -static` by node.sh, because no registry image (registry.k8s.io/pause) can be pulled here.
 * As PID 1 of the sandbox it must exit on SIGTERM/SIGINT (nothing else would stop it) and reap
 * any children it inherits. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { _exit(sig == SIGTERM ? 0 : 2); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = stop;
  sigaction(SIGINT, &sa, NULL);
  sigaction(SIGTERM, &sa, NULL);
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &sa, NULL);
  for (;;) pause();
}
