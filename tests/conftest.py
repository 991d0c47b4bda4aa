import os

# Tests exercise the library's own precision handling; nothing here flips
# the global x64 flag.  Keep XLA from grabbing every core in parallel runs.
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")
