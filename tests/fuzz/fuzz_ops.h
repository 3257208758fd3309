/* fuzz_ops.h - the input encoding of fuzz_ops.c, shared with gen_corpus.c.
 *
 * Input: byte 0 = hash profile (mod 4: 0 address hashes, 1 all equal,
 * 2 equal but the top two bits, 3 one byte per variable creation picks
 * which 5-bit chunks differ). Then operations: an opcode byte (mod
 * FZ_OP_COUNT) and its argument bytes; missing bytes read as 0.
 *
 * Argument fields (bit ranges of the first argument byte `a` unless
 * stated; "var" = (bits & 7) % 5, a variable slot; "sel" = 2 bits, 0..2 a
 * context handle slot, 3 the current context; "cslot" = (2 bits) % 3):
 *   SET        a: var 0-2, with token 3, token slot 4-5;  b: value
 *   RESET      a: var 0-2, token slot 3-4, use the token's own var 5
 *   GET        a: var 0-2, variant 3-4 (get, get_or b, get(NULL), get(out NULL))
 *   COPY_CONTEXT  a: cslot 0-1
 *   CONTEXT_COPY  a: sel 0-1, cslot 2-3
 *   CONTEXT_NEW   a: cslot 0-1
 *   RUN        a: sel 0-1, NULL result 2, NULL fn if bits 3-5 == 7;
 *              b: body = next 1 + b % 6 operations
 *   CTX_READ   a: sel 0-1, var 2-4, variant 5-6 (get, contains, NULL args, len)
 *   FOREACH    a: sel 0-1, NULL fn 2;  b: stop after b % 8 + 1 calls
 *   EQUAL      a: sel 0-1, sel 2-3
 *   TOK_RELEASE a: token slot 0-1
 *   CTX_RELEASE a: cslot 0-1
 *   TOK_QUERY  a: token slot 0-1
 *   RETAIN     a: sel 0-1, cslot 2-3
 *   VAR_RENEW  a: var 0-2 (release the creator reference, make a new one)
 *   WITH       a: var 0-2, mode 3-4 (% 3: plain, break, continue);
 *              b: value; c: body = next 1 + c % 5 operations
 *   BAD_ARGS   a: case 0-3, token slot 4-5; case 9 reads one more byte
 */
#ifndef FUZZ_OPS_H
#define FUZZ_OPS_H

enum {
    FZ_SET, FZ_SET2, FZ_RESET, FZ_RESET2, FZ_GET, FZ_COPY_CONTEXT, FZ_CONTEXT_COPY,
    FZ_CONTEXT_NEW, FZ_RUN, FZ_CTX_READ, FZ_FOREACH, FZ_EQUAL, FZ_TOK_RELEASE,
    FZ_CTX_RELEASE, FZ_TOK_QUERY, FZ_RETAIN, FZ_VAR_RENEW, FZ_WITH, FZ_BAD_ARGS,
    FZ_OP_COUNT
};

#define FZ_SEL_CURRENT 3

#endif
