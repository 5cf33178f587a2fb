"""How long a test waits for an event before calling it lost: one bound for the whole suite."""

# Seconds. Every wait in the tests is for an event (a process's exit, a line, a file, a
# release), and its bound only keeps a hang from stalling the run: it is far beyond what a slow
# or heavily loaded machine takes (runs at a load average of 8 on 2 cores have taken minutes
# where a quiet machine takes seconds), so no test fails because the machine is slow.
HANG = 1800.0
