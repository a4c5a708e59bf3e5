/* app/broker/codec.h: what the broker's job codec (app/broker/codec.c:
 * encoder, jansson decoder, result records) and its fast decoder (app/broker/decode.c)
 * share.  Internal, never installed; the codec's API is in app/broker/broker.h. */
#ifndef BELT_BROKER_CODEC_H
#define BELT_BROKER_CODEC_H

#include <stdbool.h>

#include "belt/job.h"
#include "exec/exec.h"

/* A decoded job owns its strings: it is the first member of a wire job
 * that also holds them, so belt__broker_job_free() can find them from the
 * belt_job pointer.  A packed one (fast path) is one block: the struct,
 * then the argv and env pointer arrays, then the string bytes. */
typedef struct belt__wire_job {
    belt_job job;     /* first: a belt_job * is a belt__wire_job * */
    char *id, *run, *cwd, *stdin_path, *output_dir;
    char **argv, **env; /* NULL-terminated, each string owned */
    bool packed;      /* one block: free(w) frees everything */
} belt__wire_job;

/* Enumerations travel by name (exec/exec.h's tables); the index is the
 * enum value. */



/* The fast path: returns BELT_OK with *out set, BELT_ENOMEM, or 1 when it
 * gives up (the text is not in the encoder's shape); then nothing is
 * allocated and *out is untouched. */
int belt__broker_decode_fast(const char *text, belt_job **out);

#endif
