;; loop.wat — a guest that never finishes.
;;
;; What it does: _start spins in an empty infinite loop. Imports nothing, so
;;               it is only stopped by a limit: fuel (OUTCOME_OUT_OF_FUEL),
;;               the wall-clock timeout (OUTCOME_TIMEOUT) or cancellation.
;; Args:         none (ignored).  Stdin: not read.
;; Output:       nothing on stdout/stderr; it never exits by itself
;;               (exit_code -1 with the limit's outcome).
;; Exports:      memory (1 page, 64 KiB), _start.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    (loop $forever
      br $forever)))
