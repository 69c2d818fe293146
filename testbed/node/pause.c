/* The test node's pod sandbox ("pause") process: it holds the pod's namespaces, reaps orphans, and exits on
 * SIGINT or SIGTERM. Built static by testbed/node/images.py; there is no registry to pull one from. */
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
    (void)sig;
    while (waitpid(-1, NULL, WNOHANG) > 0) {
    }
}

int main(void) {
    signal(SIGINT, stop);
    signal(SIGTERM, stop);
    signal(SIGCHLD, reap);
    for (;;) pause();
}
