;; Echoes its arguments back: a template, to make into what @NAME@ should do.
;;
;; A WASM tool is a WASI (preview 1) command, run in wasmtime under fuel,
;; memory, time and output limits, with no network and no files but the
;; workspace (docs/wasm.md). Each call runs `_start` once:
;;
;; Input (stdin):   the task's `with:` arguments, one JSON object: {"text": "hi"}
;; Output (stdout): the result, one JSON document (a task reads it as
;;                  `output.result`); here {"echo": <the arguments>}
;; Exit status:     0; 2, with a message on stderr, when the arguments cannot
;;                  be read or are over 64 KiB (a non-zero exit fails the call)
;;
;; Nexus compiles this text form itself. A module built from Rust, C, Go or
;; AssemblyScript (target wasm32-wasip1) is declared the same way, as `.wasm`.
;; Declare it in nexus.toml, approve its launch pin, then name it in a task:
;;
;;   [wasm_tools.@NAME@]
;;   module = "@FILE@"
;;   pure = true                     # it writes nothing to the workspace
;;
;;   nexus tools                      shows its pin
;;   nexus tools approve wasm:@NAME@ --pin PIN
;;
;;   tasks:
;;     call: {tool: @NAME@, with: {text: hi}}
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  ;; page 0: scratch (an iovec at 0, a count at 16) and the strings at 512;
  ;; page 1 (65536..131071): the arguments as read from stdin
  (memory (export "memory") 2)
  (data (i32.const 512) "{\"echo\":")                                           ;; 8 bytes
  (data (i32.const 528) "}\n")                                                  ;; 2 bytes
  (data (i32.const 544) "null")                                                 ;; 4 bytes
  (data (i32.const 560) "the arguments could not be read, or are over 64 KiB\n") ;; 52 bytes

  (global $len (mut i32) (i32.const 0))       ;; bytes of arguments read

  ;; Write memory[ptr..ptr+len) to fd completely, retrying short writes.
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 0) (local.get $ptr))
        (i32.store (i32.const 4) (local.get $len))
        (if (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 16))
          (then (call $proc_exit (i32.const 3))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 16))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 16))))
        (br $more))))

  ;; Read stdin to its end into page 1: 1 when it cannot be read or does not fit.
  (func $read_all (result i32)
    (local $got i32)
    (loop $more
      (if (i32.ge_u (global.get $len) (i32.const 65536))
        (then (return (i32.const 1))))
      (i32.store (i32.const 0) (i32.add (i32.const 65536) (global.get $len)))
      (i32.store (i32.const 4) (i32.sub (i32.const 65536) (global.get $len)))
      (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))
        (then (return (i32.const 1))))
      (local.set $got (i32.load (i32.const 16)))
      (global.set $len (i32.add (global.get $len) (local.get $got)))
      (br_if $more (local.get $got)))
    (i32.const 0))

  (func (export "_start")
    (if (call $read_all)
      (then
        (call $write (i32.const 2) (i32.const 560) (i32.const 52))
        (call $proc_exit (i32.const 2))))
    ;; drop trailing white space (the newline after the JSON)
    (block $trimmed
      (loop $trim
        (br_if $trimmed (i32.eqz (global.get $len)))
        (br_if $trimmed
          (i32.gt_u (i32.load8_u (i32.add (i32.const 65535) (global.get $len))) (i32.const 32)))
        (global.set $len (i32.sub (global.get $len) (i32.const 1)))
        (br $trim)))
    (call $write (i32.const 1) (i32.const 512) (i32.const 8))
    (if (global.get $len)
      (then (call $write (i32.const 1) (i32.const 65536) (global.get $len)))
      (else (call $write (i32.const 1) (i32.const 544) (i32.const 4))))
    (call $write (i32.const 1) (i32.const 528) (i32.const 2))))
