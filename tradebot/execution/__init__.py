"""Order state machine and execution clients (the paper venue is one)."""
