;; wordcount: a WASI (preview 1) command that counts the text it is given.
;;
;; Input (stdin):  the tool's JSON arguments, which must start with the key
;;                 "text":  {"text": "some words\nand lines"}
;; Output (stdout): {"bytes":N,"chars":N,"words":N,"lines":N}
;;                 bytes  UTF-8 bytes of the decoded text
;;                 chars  Unicode code points
;;                 words  maximal runs of non-whitespace bytes, where whitespace
;;                        is ASCII space, \t, \n, \v, \f, \r (as `wc -w` in the
;;                        C locale, or Python's `bytes.split()`)
;;                 lines  newline characters (as `wc -l`)
;; Exit status:    0, or 2 with a message on stderr when the input is not of
;;                 that shape.
;;
;; The JSON string is decoded as a stream (all escapes, \uXXXX and surrogate
;; pairs included), so the text may be longer than the module's memory.
;; Build: none. Nexus compiles this text form directly (wasmtime parses WAT).
(module
  (import "wasi_snapshot_preview1" "fd_read"
    (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit"
    (func $proc_exit (param i32)))

  ;; page 0: scratch (iovecs at 0 and 32, counts at 16, output at 1024,
  ;;         constant strings at 512); page 1: the stdin buffer.
  (memory (export "memory") 2)
  (data (i32.const 512) "{\"bytes\":")        ;; 512, 9 bytes
  (data (i32.const 528) ",\"chars\":")        ;; 528, 9 bytes
  (data (i32.const 544) ",\"words\":")        ;; 544, 9 bytes
  (data (i32.const 560) ",\"lines\":")        ;; 560, 9 bytes
  (data (i32.const 576) "}\n")                ;; 576, 2 bytes
  (data (i32.const 600) "wordcount: expected {\"text\": string} on stdin\n")   ;; 46
  (data (i32.const 700) "wordcount: cannot read stdin\n")                     ;; 29

  (global $pos (mut i32) (i32.const 0))      ;; next byte in the stdin buffer
  (global $len (mut i32) (i32.const 0))      ;; bytes in the stdin buffer
  (global $eof (mut i32) (i32.const 0))
  (global $out (mut i32) (i32.const 1024))   ;; end of the output built so far
  (global $bytes (mut i64) (i64.const 0))
  (global $chars (mut i64) (i64.const 0))
  (global $words (mut i64) (i64.const 0))
  (global $lines (mut i64) (i64.const 0))
  (global $inword (mut i32) (i32.const 0))

  ;; Write memory[ptr..ptr+len) to fd completely, retrying short writes.
  (func $write_all (param $fd i32) (param $ptr i32) (param $len i32)
    (block $done
      (loop $more
        (br_if $done (i32.eqz (local.get $len)))
        (i32.store (i32.const 32) (local.get $ptr))
        (i32.store (i32.const 36) (local.get $len))
        (if (call $fd_write (local.get $fd) (i32.const 32) (i32.const 1) (i32.const 16))
          (then (call $proc_exit (i32.const 3))))
        (local.set $ptr (i32.add (local.get $ptr) (i32.load (i32.const 16))))
        (local.set $len (i32.sub (local.get $len) (i32.load (i32.const 16))))
        (br $more))))

  (func $fail
    (call $write_all (i32.const 2) (i32.const 600) (i32.const 46))
    (call $proc_exit (i32.const 2))
    unreachable)

  ;; The next stdin byte, or -1 at end of input.
  (func $getc (result i32)
    (local $b i32)
    (if (i32.ge_u (global.get $pos) (global.get $len))
      (then
        (if (global.get $eof) (then (return (i32.const -1))))
        (i32.store (i32.const 0) (i32.const 65536))
        (i32.store (i32.const 4) (i32.const 65536))
        (if (call $fd_read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 16))
          (then
            (call $write_all (i32.const 2) (i32.const 700) (i32.const 29))
            (call $proc_exit (i32.const 2))))
        (global.set $len (i32.load (i32.const 16)))
        (global.set $pos (i32.const 0))
        (if (i32.eqz (global.get $len))
          (then (global.set $eof (i32.const 1)) (return (i32.const -1))))))
    (local.set $b (i32.load8_u (i32.add (i32.const 65536) (global.get $pos))))
    (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
    (local.get $b))

  (func $is_space (param $b i32) (result i32)
    (i32.or
      (i32.eq (local.get $b) (i32.const 32))
      (i32.and (i32.ge_u (local.get $b) (i32.const 9))       ;; \t \n \v \f \r
               (i32.le_u (local.get $b) (i32.const 13)))))

  (func $word_byte (param $space i32)
    (if (local.get $space)
      (then (global.set $inword (i32.const 0)))
      (else
        (if (i32.eqz (global.get $inword))
          (then
            (global.set $words (i64.add (global.get $words) (i64.const 1)))
            (global.set $inword (i32.const 1)))))))

  ;; Count one raw UTF-8 byte of the text.
  (func $count_byte (param $b i32)
    (global.set $bytes (i64.add (global.get $bytes) (i64.const 1)))
    (if (i32.ne (i32.and (local.get $b) (i32.const 0xC0)) (i32.const 0x80))
      (then (global.set $chars (i64.add (global.get $chars) (i64.const 1)))))
    (if (i32.eq (local.get $b) (i32.const 10))
      (then (global.set $lines (i64.add (global.get $lines) (i64.const 1)))))
    (call $word_byte (call $is_space (local.get $b))))

  ;; Count one code point that came from a \uXXXX escape.
  (func $count_cp (param $cp i32)
    (if (i32.lt_u (local.get $cp) (i32.const 0x80))
      (then (call $count_byte (local.get $cp)) (return)))
    (global.set $bytes (i64.add (global.get $bytes)
      (if (result i64) (i32.lt_u (local.get $cp) (i32.const 0x800))
        (then (i64.const 2))
        (else (if (result i64) (i32.lt_u (local.get $cp) (i32.const 0x10000))
          (then (i64.const 3))
          (else (i64.const 4)))))))
    (global.set $chars (i64.add (global.get $chars) (i64.const 1)))
    (call $word_byte (i32.const 0)))

  (func $skip_ws (result i32)
    (local $c i32)
    (loop $again
      (local.set $c (call $getc))
      (br_if $again (i32.or (i32.eq (local.get $c) (i32.const 32))
                            (i32.or (i32.eq (local.get $c) (i32.const 9))
                                    (i32.or (i32.eq (local.get $c) (i32.const 10))
                                            (i32.eq (local.get $c) (i32.const 13)))))))
    (local.get $c))

  (func $expect (param $want i32) (param $got i32)
    (if (i32.ne (local.get $want) (local.get $got)) (then (call $fail))))

  (func $hex4 (result i32)
    (local $v i32) (local $i i32) (local $c i32)
    (loop $digit
      (local.set $c (call $getc))
      (local.set $v (i32.shl (local.get $v) (i32.const 4)))
      (if (i32.and (i32.ge_u (local.get $c) (i32.const 48)) (i32.le_u (local.get $c) (i32.const 57)))
        (then (local.set $v (i32.or (local.get $v) (i32.sub (local.get $c) (i32.const 48)))))
        (else
          (local.set $c (i32.or (local.get $c) (i32.const 32)))           ;; lower-case
          (if (i32.and (i32.ge_u (local.get $c) (i32.const 97)) (i32.le_u (local.get $c) (i32.const 102)))
            (then (local.set $v (i32.or (local.get $v) (i32.sub (local.get $c) (i32.const 87)))))
            (else (call $fail)))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $digit (i32.lt_u (local.get $i) (i32.const 4))))
    (local.get $v))

  ;; After a backslash: decode one escape and count what it stands for.
  (func $escape
    (local $c i32) (local $lo i32)
    (local.set $c (call $getc))
    (if (i32.eq (local.get $c) (i32.const 117))                          ;; \uXXXX
      (then
        (local.set $c (call $hex4))
        (if (i32.eq (i32.and (local.get $c) (i32.const 0xFC00)) (i32.const 0xD800))
          (then                                                          ;; high surrogate
            (call $expect (i32.const 92) (call $getc))
            (call $expect (i32.const 117) (call $getc))
            (local.set $lo (call $hex4))
            (if (i32.ne (i32.and (local.get $lo) (i32.const 0xFC00)) (i32.const 0xDC00))
              (then (call $fail)))
            (local.set $c (i32.add (i32.const 0x10000)
              (i32.or (i32.shl (i32.sub (local.get $c) (i32.const 0xD800)) (i32.const 10))
                      (i32.sub (local.get $lo) (i32.const 0xDC00)))))))
        (call $count_cp (local.get $c))
        (return)))
    (block $known
      (block $bad
        (br_if $known (i32.eq (local.get $c) (i32.const 34)))            ;; \"
        (br_if $known (i32.eq (local.get $c) (i32.const 92)))            ;; \\
        (br_if $known (i32.eq (local.get $c) (i32.const 47)))            ;; \/
        (if (i32.eq (local.get $c) (i32.const 98)) (then (local.set $c (i32.const 8)) (br $known)))
        (if (i32.eq (local.get $c) (i32.const 102)) (then (local.set $c (i32.const 12)) (br $known)))
        (if (i32.eq (local.get $c) (i32.const 110)) (then (local.set $c (i32.const 10)) (br $known)))
        (if (i32.eq (local.get $c) (i32.const 114)) (then (local.set $c (i32.const 13)) (br $known)))
        (if (i32.eq (local.get $c) (i32.const 116)) (then (local.set $c (i32.const 9)) (br $known)))
        (br $bad))
      (call $fail))
    (call $count_byte (local.get $c)))

  (func $emit (param $ptr i32) (param $len i32)
    (memory.copy (global.get $out) (local.get $ptr) (local.get $len))
    (global.set $out (i32.add (global.get $out) (local.get $len))))

  (func $emit_u64 (param $n i64)
    (local $p i32) (local $len i32)
    ;; digits are written backwards into 128..160, then copied out
    (local.set $p (i32.const 160))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.wrap_i64 (i64.rem_u (local.get $n) (i64.const 10)))))
      (local.set $n (i64.div_u (local.get $n) (i64.const 10)))
      (br_if $digit (i64.ne (local.get $n) (i64.const 0))))
    (call $emit (local.get $p) (i32.sub (i32.const 160) (local.get $p))))

  (func (export "_start")
    (local $c i32)
    ;; {"text":
    (call $expect (i32.const 123) (call $skip_ws))
    (call $expect (i32.const 34) (call $skip_ws))
    (call $expect (i32.const 116) (call $getc))
    (call $expect (i32.const 101) (call $getc))
    (call $expect (i32.const 120) (call $getc))
    (call $expect (i32.const 116) (call $getc))
    (call $expect (i32.const 34) (call $getc))
    (call $expect (i32.const 58) (call $skip_ws))
    (call $expect (i32.const 34) (call $skip_ws))
    ;; the string, up to its closing quote
    (block $end
      (loop $next
        (local.set $c (call $getc))
        (if (i32.lt_s (local.get $c) (i32.const 0)) (then (call $fail)))
        (br_if $end (i32.eq (local.get $c) (i32.const 34)))
        (if (i32.eq (local.get $c) (i32.const 92))
          (then (call $escape))
          (else (call $count_byte (local.get $c))))
        (br $next)))
    (call $emit (i32.const 512) (i32.const 9))
    (call $emit_u64 (global.get $bytes))
    (call $emit (i32.const 528) (i32.const 9))
    (call $emit_u64 (global.get $chars))
    (call $emit (i32.const 544) (i32.const 9))
    (call $emit_u64 (global.get $words))
    (call $emit (i32.const 560) (i32.const 9))
    (call $emit_u64 (global.get $lines))
    (call $emit (i32.const 576) (i32.const 2))
    (call $write_all (i32.const 1) (i32.const 1024) (i32.sub (global.get $out) (i32.const 1024)))
    (call $proc_exit (i32.const 0))))
