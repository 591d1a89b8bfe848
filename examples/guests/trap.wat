;; trap.wat — a guest that traps immediately.
;;
;; What it does: _start executes `unreachable`. Imports nothing.
;; Args:         none (ignored).  Stdin: not read.
;; Output:       nothing on stdout/stderr; the run ends in a trap
;;               (OUTCOME_TRAP, trap_kind "unreachable", exit_code -1).
;; Exports:      memory (1 page, 64 KiB), _start.
(module
  (memory (export "memory") 1)
  (func (export "_start")
    unreachable))
