/* ttt-inspect - describe ttt files: token shards, token streams,
 * tokenizer.json, model checkpoints (a RUNDIR or its model.safetensors),
 * fast-weight states (ttt-generate --state-out), other safetensors, and
 * name foreign formats; compare two checkpoints or states (--diff); export
 * one tensor as .npy (--tensor NAME --npy).
 *
 * Structure: detect() looks at a file's first bytes and returns a kind;
 * the kinds[] table maps each kind to one inspect_* function. To teach
 * ttt-inspect a new kind (model checkpoints, fast-weight states), add a
 * detection rule, a table row and one function that fills a record with
 * rec_*() calls. The record printer does the plain text (aligned "key:
 * value" lines, a blank line between files) and --json (one object per
 * file per line) layouts, so the inspect functions never format output.
 * Numbers about tensors come from lib/inspect_*.c.
 */
#include "cli.h"
#include "../lib/checkpoint.h" /* ttt_ckpt_load_model, ttt_ckpt_is_run */
#include "../lib/err.h"        /* ttt_errmsg */
#include "../lib/inspect_model.h"  /* parameter groups, fast-weight rows */
#include "../lib/inspect_npy.h"    /* ttt_npy_write */
#include "../lib/inspect_tensor.h" /* ttt_tstats_of, ttt_tdiff_of */
#include "../lib/io.h"         /* ttt_foreign_format */
#include "../lib/json.h"       /* json_write_str */
#include "../lib/safetensors.h"/* ttt_st_open */
#include "../lib/shard.h"      /* ttt_shard_open */
#include "../lib/state.h"      /* ttt_state_model_hash */
#include "../lib/tokenizer.h"  /* ttt_tokenizer_load, decode */
#include "../lib/tokstream.h"  /* ttt_tokstream_reader */

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { OPT_JSON = 256, OPT_VERIFY, OPT_DOCS, OPT_DIFF, OPT_TENSOR, OPT_NPY };

static const cli_option opts[] = {
    { "json", OPT_JSON, no_argument, NULL, "one JSON object per file per line" },
    { "verify", OPT_VERIFY, no_argument, NULL, "check every checksum; exit 1 naming the first damage" },
    { "tokenizer", 't', required_argument, "FILE", "tokenizer.json to decode documents with (--docs)" },
    { "docs", OPT_DOCS, required_argument, "N", "show the first N documents (decoded with -t, else ids)" },
    { "model", 'm', required_argument, "RUNDIR", "checkpoint of the states: check its hash, show distances from W0" },
    { "diff", OPT_DIFF, no_argument, NULL, "compare two checkpoints or states tensor by tensor (exit 0 same, 1 differ)" },
    { "tensor", OPT_TENSOR, required_argument, "NAME", "only this tensor (its statistics, or --npy)" },
    { "npy", OPT_NPY, no_argument, NULL, "write the --tensor as a NumPy .npy file to stdout" },
    { "force", 'f', no_argument, NULL, "write --npy output even to a terminal" },
    { 0 },
};

static const cli_program prog = {
    "ttt-inspect",
    "ttt-inspect [--json] [--verify] [-t tokenizer.json] [--docs N] [-m RUNDIR] [--tensor NAME] FILE...\n"
    "       ttt-inspect --diff [--json] [--verify] [--tensor NAME] A B\n"
    "       ttt-inspect --tensor NAME --npy [-f] FILE > x.npy",
    "Describes token shards (.tok), token streams, tokenizer.json files, model\n"
    "checkpoints (RUNDIR or model.safetensors), fast-weight states and other\n"
    "safetensors files, and names foreign formats (gzip, zstd, GGUF, llm.c .bin).",
    opts,
    "With --diff the exit status is that of cmp(1): 0 identical, 1 different,\n"
    "2 trouble (usage, or a file unreadable or damaged).",
};

static int json_out, verify;
static long long show_docs;
static ttt_tokenizer *tokenizer;
static const char *tokenizer_path;
static const char *model_path, *tensor_name;
static ttt_model *model;          /* -m: the checkpoint states are checked against */
static char model_hash_hex[17];
static int npy_force;

typedef unsigned long long ull;

/* ---- record printer ---- */
static int rec_fields;

static void rec_begin(const char *path)
{
    rec_fields = 0;
    if (json_out) {
        fputs("{\"file\":", stdout);
        json_write_str(stdout, path, strlen(path));
        rec_fields = 1;
    } else {
        printf("%-17s %s\n", "file:", path);
    }
}

static void rec_key(const char *key)
{
    if (json_out) {
        printf(",\"%s\":", key);
    } else {
        char k[64];
        snprintf(k, sizeof k, "%s:", key);
        for (char *p = k; *p; p++) if (*p == '_') *p = ' ';
        printf("%-17s ", k);
    }
    rec_fields++;
}

static void rec_str(const char *key, const char *v)
{
    rec_key(key);
    if (json_out) json_write_str(stdout, v, strlen(v));
    else printf("%s\n", v);
}

static void rec_u64(const char *key, uint64_t v)
{
    rec_key(key);
    printf(json_out ? "%llu" : "%llu\n", (ull)v);
}

static void rec_hex(const char *key, uint64_t v)
{
    char b[32];
    snprintf(b, sizeof b, "0x%016llx", (ull)v);
    rec_str(key, b);
}

static void rec_num(const char *key, double v, const char *text_fmt, ...) __attribute__((format(printf, 3, 4)));
/* JSON gets the number; text gets text_fmt (which may add context). */
static void rec_num(const char *key, double v, const char *text_fmt, ...)
{
    rec_key(key);
    if (json_out) {
        printf("%.6g", v);
    } else {
        va_list ap;
        va_start(ap, text_fmt);
        vprintf(text_fmt, ap);
        va_end(ap);
        putchar('\n');
    }
}

static void rec_bool(const char *key, int v)
{
    rec_key(key);
    if (json_out) fputs(v ? "true" : "false", stdout);
    else puts(v ? "ok" : "FAILED");
}

/* one shown document: decoded text, or ids without a tokenizer */
static void rec_doc(uint64_t i, const uint32_t *ids, uint64_t n, uint64_t nbytes, uint32_t eot, int first)
{
    uint64_t shown = n && ids[n - 1] == eot ? n - 1 : n;   /* text without the trailing eot */
    char *text = NULL;
    size_t len = 0, cap = 0;
    if (tokenizer && ttt_tokenizer_decode(tokenizer, ids, (size_t)shown, &text, &len, &cap))
        cli_die("%s: %s", tokenizer_path, ttt_errmsg());
    if (json_out) {
        if (first) fputs(",\"docs\":[", stdout);
        else putchar(',');
        printf("{\"index\":%llu,\"tokens\":%llu,\"bytes\":%llu,", (ull)i, (ull)n, (ull)nbytes);
        if (tokenizer) {
            fputs("\"text\":", stdout);
            json_write_str(stdout, text ? text : "", len);
        } else {
            fputs("\"ids\":[", stdout);
            for (uint64_t k = 0; k < n; k++) printf(k ? ",%u" : "%u", ids[k]);
            putchar(']');
        }
        putchar('}');
    } else {
        printf("--- document %llu: %llu tokens, %llu bytes\n", (ull)i, (ull)n, (ull)nbytes);
        if (tokenizer) {
            fwrite(text, 1, len, stdout);
            if (len && text[len - 1] != '\n') putchar('\n');
        } else {
            for (uint64_t k = 0; k < n; k++) printf(k ? " %u" : "%u", ids[k]);
            putchar('\n');
        }
    }
    free(text);
    cli_check_stdout();
}

static void rec_docs_end(int any)
{
    if (json_out && any) putchar(']');
}

/* Ends the record; err (may be NULL) is added to the JSON object. */
static void rec_end(const char *err)
{
    if (json_out) {
        if (err) {
            fputs(",\"error\":", stdout);
            json_write_str(stdout, err, strlen(err));
        }
        puts("}");
    }
    cli_check_stdout();
}

/* ---- record printer: checkpoints, states, diffs ---- */

/* A JSON number in the shortest form that reads back the same double
 * (1e-06, not 9.99...e-07); NaN and infinities (not JSON) become null. */
static void jnum(double v)
{
    char b[32];
    if (!isfinite(v)) { fputs("null", stdout); return; }
    for (int prec = 9; prec <= 17; prec++) {
        snprintf(b, sizeof b, "%.*g", prec, v);
        if (strtod(b, NULL) == v) break;
    }
    fputs(b, stdout);
}

static void json_shape(const ttt_st_tensor *t)
{
    putchar('[');
    for (int d = 0; d < t->ndim; d++) printf(d ? ",%lld" : "%lld", (long long)t->shape[d]);
    putchar(']');
}

/* dtype, shape and statistics of one tensor as fields of the record (--tensor) */
static void rec_tensor_fields(const ttt_st_tensor *t, const ttt_tstats *s)
{
    char sh[160];
    rec_str("tensor", t->name);
    rec_str("dtype", ttt_st_dtype_name(t->dtype));
    if (json_out) { rec_key("shape"); json_shape(t); }
    else { ttt_shape_str(t, sh, sizeof sh); rec_str("shape", sh); }
    rec_u64("elements", t->numel);
    const char *k[] = { "mean", "std", "min", "max", "norm" };
    double v[] = { s->mean, s->std, s->min, s->max, s->norm };
    for (int i = 0; i < 5; i++) {
        rec_key(k[i]);
        if (json_out) jnum(v[i]);
        else printf("%.9g\n", v[i]);
    }
    if (s->nonfinite) rec_u64("nonfinite", s->nonfinite);
}

/* one row of the tensor table (name column w wide) */
static void rec_tensor(const ttt_st_tensor *t, const ttt_tstats *s, int with_group, int w, int first)
{
    if (json_out) {
        if (!first) putchar(',');
        fputs("{\"name\":", stdout);
        json_write_str(stdout, t->name, strlen(t->name));
        printf(",\"dtype\":\"%s\",\"shape\":", ttt_st_dtype_name(t->dtype));
        json_shape(t);
        if (with_group) printf(",\"group\":\"%s\"", ttt_group_name(ttt_group_of(t->name, NULL)));
        fputs(",\"mean\":", stdout); jnum(s->mean);
        fputs(",\"std\":", stdout); jnum(s->std);
        fputs(",\"min\":", stdout); jnum(s->min);
        fputs(",\"max\":", stdout); jnum(s->max);
        fputs(",\"norm\":", stdout); jnum(s->norm);
        if (s->nonfinite) printf(",\"nonfinite\":%llu", (ull)s->nonfinite);
        putchar('}');
    } else {
        char sh[160];
        ttt_shape_str(t, sh, sizeof sh);
        printf("%-*s %-5s %-15s %11.4g %11.4g %11.4g %11.4g %11.4g", w, t->name, ttt_st_dtype_name(t->dtype), sh,
               s->mean, s->std, s->min, s->max, s->norm);
        if (s->nonfinite) printf("  (%llu NaN/Inf)", (ull)s->nonfinite);
        putchar('\n');
    }
}

/* The config: JSON gets the object (compacted), text one key=value line. */
static void json_compact(const json *j)
{
    switch (j->type) {
    case JSON_NULL: fputs("null", stdout); break;
    case JSON_BOOL: fputs(j->boolean ? "true" : "false", stdout); break;
    case JSON_NUM: jnum(j->num); break;
    case JSON_STR: json_write_str(stdout, j->str, j->len); break;
    case JSON_ARR:
    case JSON_OBJ:
        putchar(j->type == JSON_ARR ? '[' : '{');
        for (size_t i = 0; i < j->len; i++) {
            if (i) putchar(',');
            if (j->type == JSON_OBJ) { json_write_str(stdout, j->keys[i], strlen(j->keys[i])); putchar(':'); }
            json_compact(&j->items[i]);
        }
        putchar(j->type == JSON_ARR ? ']' : '}');
        break;
    }
}

static void rec_config(const json *cj, const ttt_config *c)
{
    rec_key("config");
    if (json_out) { json_compact(cj); return; }
    if (c->seq_modeling_block != SEQ_TTT) {
        printf("%s baseline, L=%d C=%d H=%d I=%d V=%d\n",
               c->seq_modeling_block == SEQ_ATTENTION ? "Transformer (attention)" : "Mamba (selective SSM)",
               c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size, c->vocab_size);
        return;
    }
    printf("%s, L=%d C=%d H=%d I=%d V=%d K=%d, %s backbone\n", c->ttt_layer_type == TTT_MLP ? "TTT-MLP" : "TTT-Linear",
           c->num_hidden_layers, c->hidden_size, c->num_attention_heads, c->intermediate_size, c->vocab_size,
           c->mini_batch_size, c->pre_conv ? "Mamba" : "Transformer");
}

static void rec_groups(const uint64_t *per_layer, const uint64_t *total, uint64_t params)
{
    if (json_out) fputs(",\"groups\":[", stdout);
    else printf("\n%-22s %12s %12s %7s\n", "group", "per layer", "total", "share");
    int first = 1;
    for (int g = 0; g < TTT_G_COUNT; g++) {
        if (!total[g]) continue;
        double share = params ? 100.0 * (double)total[g] / (double)params : 0;
        if (json_out) {
            printf("%s{\"group\":\"%s\",\"per_layer\":%llu,\"parameters\":%llu}", first ? "" : ",",
                   ttt_group_name(g), (ull)(ttt_group_per_layer(g) ? per_layer[g] : 0), (ull)total[g]);
        } else if (ttt_group_per_layer(g)) {
            printf("%-22s %12llu %12llu %6.1f%%\n", ttt_group_name(g), (ull)per_layer[g], (ull)total[g], share);
        } else {
            printf("%-22s %12s %12llu %6.1f%%\n", ttt_group_name(g), "-", (ull)total[g], share);
        }
        first = 0;
    }
    if (json_out) putchar(']');
    else printf("%-22s %12s %12llu %6.1f%%\n", "total", "", (ull)params, 100.0);
}

/* per layer and head: fast-weight norms (and distances with -m) */
static void rec_fw(const ttt_fw_row *r, int n, int with_model)
{
    if (json_out) fputs(",\"fast_weights\":[", stdout);
    else if (with_model) printf("\n%5s %4s %-5s %11s %11s %11s %11s\n", "layer", "head", "param", "|S|", "|A|", "|S-W0|", "|Snow-W0|");
    else printf("\n%5s %4s %-5s %11s %11s\n", "layer", "head", "param", "|S|", "|A|");
    for (int i = 0; i < n; i++) {
        if (json_out) {
            printf("%s{\"layer\":%d,\"head\":%d,\"param\":\"%s\",\"norm\":", i ? "," : "", r[i].layer, r[i].head, r[i].param);
            jnum(r[i].norm);
            fputs(",\"pending\":", stdout); jnum(r[i].pending);
            if (with_model) {
                fputs(",\"dist0\":", stdout); jnum(r[i].dist0);
                fputs(",\"dist_now\":", stdout); jnum(r[i].dist_now);
            }
            putchar('}');
        } else {
            printf("%5d %4d %-5s %11.4g %11.4g", r[i].layer, r[i].head, r[i].param, r[i].norm, r[i].pending);
            if (with_model) printf(" %11.4g %11.4g", r[i].dist0, r[i].dist_now);
            putchar('\n');
        }
    }
    if (json_out) putchar(']');
}

static void rec_diff_begin(const char *a, const char *b, int w)
{
    if (json_out) {
        fputs("{\"a\":", stdout);
        json_write_str(stdout, a, strlen(a));
        fputs(",\"b\":", stdout);
        json_write_str(stdout, b, strlen(b));
        fputs(",\"tensors\":[", stdout);
    } else {
        printf("--- a: %s\n+++ b: %s\n%-*s %12s %12s %12s\n", a, b, w, "tensor", "max abs diff", "rel diff", "differing");
    }
}

/* status: identical, differ, shape (msg says how), only_a, only_b */
static void rec_diff_tensor(const char *name, const char *status, const char *msg, const ttt_tdiff *d, int w, int first)
{
    if (json_out) {
        printf("%s{\"name\":", first ? "" : ",");
        json_write_str(stdout, name, strlen(name));
        printf(",\"status\":\"%s\"", status);
        if (d) {
            fputs(",\"max_abs\":", stdout); jnum(d->max_abs);
            fputs(",\"rel\":", stdout); jnum(d->rel);
            printf(",\"ndiff\":%llu", (ull)d->ndiff);
        }
        if (msg) { fputs(",\"message\":", stdout); json_write_str(stdout, msg, strlen(msg)); }
        putchar('}');
    } else if (d && d->identical) {
        printf("%-*s %12s\n", w, name, "identical");
    } else if (d) {
        printf("%-*s %12.4g %12.4g %12llu\n", w, name, d->max_abs, d->rel, (ull)d->ndiff);
    } else if (msg) {
        printf("%-*s %s\n", w, name, msg);
    } else {
        printf("%-*s only in %s\n", w, name, !strcmp(status, "only_a") ? "a" : "b");
    }
    cli_check_stdout();
}

static void rec_diff_list_end(void)
{
    if (json_out) putchar(']');
}

static void rec_diff_meta(const char *key, const char *va, const char *vb, int first)
{
    if (json_out) {
        fputs(first ? ",\"metadata\":[{\"key\":" : ",{\"key\":", stdout);
        json_write_str(stdout, key, strlen(key));
        fputs(",\"a\":", stdout);
        if (va) json_write_str(stdout, va, strlen(va)); else fputs("null", stdout);
        fputs(",\"b\":", stdout);
        if (vb) json_write_str(stdout, vb, strlen(vb)); else fputs("null", stdout);
        putchar('}');
    } else if (strchr(va ? va : "", '\n') || strchr(vb ? vb : "", '\n')) {
        printf("metadata %s differs\n", key);   /* the config: many lines */
    } else {
        printf("metadata %s: %s -> %s\n", key, va ? va : "(absent)", vb ? vb : "(absent)");
    }
}

static void rec_diff_end(uint64_t compared, uint64_t differ, uint64_t only_a, uint64_t only_b, uint64_t meta,
                         double max_abs, int same, int any_meta)
{
    if (json_out) {
        if (any_meta) putchar(']');
        printf(",\"compared\":%llu,\"differ\":%llu,\"only_a\":%llu,\"only_b\":%llu,\"metadata_differ\":%llu,"
               "\"max_abs\":", (ull)compared, (ull)differ, (ull)only_a, (ull)only_b, (ull)meta);
        jnum(max_abs);
        printf(",\"identical\":%s}\n", same ? "true" : "false");
    } else {
        printf("summary: %llu tensors compared, %llu differ, %llu only in a, %llu only in b, "
               "%llu metadata entries differ; max abs diff of float tensors %.4g: %s\n", (ull)compared, (ull)differ, (ull)only_a,
               (ull)only_b, (ull)meta, max_abs, same ? "identical" : "files differ");
    }
    cli_check_stdout();
}

/* --npy: binary to a terminal only when forced */
static void cli_refuse_npy_tty(void)
{
    if (!npy_force && isatty(STDOUT_FILENO))
        cli_die("stdout is a terminal, refusing to write a .npy file (use -f to force, or redirect)");
}

/* ---- helpers ---- */
static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* min / median / max of n document lengths (sorts lens) */
static void rec_doc_lengths(uint64_t *lens, uint64_t n)
{
    if (!n) return;
    qsort(lens, (size_t)n, sizeof *lens, cmp_u64);
    uint64_t med = lens[n / 2];
    if (json_out) {
        rec_u64("doc_tokens_min", lens[0]);
        rec_u64("doc_tokens_median", med);
        rec_u64("doc_tokens_max", lens[n - 1]);
    } else {
        rec_key("doc_tokens");
        printf("min %llu, median %llu, max %llu\n", (ull)lens[0], (ull)med, (ull)lens[n - 1]);
    }
}

/* -t given: the file's tokenizer must be this one, or decoding is nonsense */
static int check_tokenizer(const char *path, uint64_t hash, uint32_t vocab)
{
    if (!tokenizer) return 0;
    uint64_t th = ttt_tokenizer_hash(tokenizer);
    if (th != hash || ttt_tokenizer_vocab_size(tokenizer) != vocab)
        return ttt_seterr("%s: made with another tokenizer than %s (hash 0x%016llx vocab %u, tokenizer has "
                          "0x%016llx vocab %u)", path, tokenizer_path, (ull)hash, vocab, (ull)th,
                          ttt_tokenizer_vocab_size(tokenizer));
    return 0;
}

/* ---- kinds ---- */
static int inspect_shard(const char *path)
{
    ttt_shard *s = ttt_shard_open(path);
    if (!s) return -1;
    const ttt_shard_info *in = ttt_shard_get_info(s);
    uint64_t comp = 0;
    uint32_t bt = in->block_tokens;
    for (uint64_t b = 0; b < in->nblocks; b++) {
        uint32_t cb;
        ttt_shard_block(s, b, NULL, NULL, &cb);
        comp += cb;
    }
    uint64_t raw = in->ntokens * (uint64_t)in->token_width;
    rec_begin(path);
    rec_str("format", "ttt shard");
    rec_u64("tokens", in->ntokens);
    rec_u64("documents", in->ndocs);
    if (json_out) { rec_u64("blocks", in->nblocks); rec_u64("block_tokens", bt); }
    else { rec_key("blocks"); printf("%llu (of %u tokens)\n", (ull)in->nblocks, bt); }
    if (json_out) rec_u64("token_width", (uint64_t)in->token_width);
    else { rec_key("token_width"); printf("%d bytes\n", in->token_width); }
    double ratio = comp ? (double)raw / (double)comp : 0;
    rec_num("compression", ratio, "%.2fx (%llu -> %llu bytes)", ratio, (ull)raw, (ull)comp);
    if (json_out) { rec_u64("raw_bytes", raw); rec_u64("compressed_bytes", comp); }
    rec_u64("file_bytes", in->file_bytes);
    rec_hex("tokenizer_hash", in->tok_hash);
    rec_u64("vocab", in->vocab);
    rec_u64("eot", in->eot);
    rec_u64("text_bytes", in->text_bytes);
    if (in->ntokens) {
        double bpt = (double)in->text_bytes / (double)in->ntokens;
        rec_num("bytes_per_token", bpt, "%.3f", bpt);
    }
    uint64_t *lens = malloc((in->ndocs ? in->ndocs : 1) * sizeof *lens);
    if (!lens) cli_die("out of memory");
    for (uint64_t d = 0; d < in->ndocs; d++) ttt_shard_doc(s, d, NULL, &lens[d], NULL);
    rec_doc_lengths(lens, in->ndocs);
    free(lens);

    int rc = 0;
    if (verify) {
        rc = ttt_shard_verify(s);
        rec_bool("verified", rc == 0);
    }
    if (!rc && show_docs > 0) rc = check_tokenizer(path, in->tok_hash, in->vocab);
    uint32_t *ids = NULL;
    for (uint64_t d = 0; !rc && d < in->ndocs && d < (uint64_t)show_docs; d++) {
        uint64_t st, nt, nb;
        ttt_shard_doc(s, d, &st, &nt, &nb);
        uint32_t *p = realloc(ids, (size_t)nt * sizeof *ids);
        if (!p) cli_die("out of memory");
        ids = p;
        rc = ttt_shard_read(s, st, (size_t)nt, ids);
        if (!rc) rec_doc(d, ids, nt, nb, in->eot, d == 0);
    }
    free(ids);
    rec_docs_end(show_docs > 0 && in->ndocs > 0);
    rec_end(rc ? ttt_errmsg() : NULL);
    ttt_shard_close(s);
    return rc;
}

static int inspect_stream(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) return ttt_seterr("%s: %s", path, strerror(errno));
    ttt_tokstream_reader r;
    if (ttt_tokstream_open(&r, f, path)) { fclose(f); return -1; }
    uint32_t *ids = NULL, n;
    size_t cap = 0;
    uint64_t nbytes, ntok = 0, text = 0, lcap = 0, *lens = NULL;
    /* documents to show are kept until the header lines are out */
    typedef struct { uint32_t *ids; uint32_t n; uint64_t nbytes; } kept;
    kept *keep = show_docs > 0 ? calloc((size_t)(show_docs < 1024 ? show_docs : 1024), sizeof *keep) : NULL;
    uint64_t nkeep = 0;
    int rc;
    while ((rc = ttt_tokstream_next(&r, &ids, &n, &cap, &nbytes)) == 1) {
        if (r.docs > lcap) {
            lcap = lcap ? lcap * 2 : 1024;
            uint64_t *p = realloc(lens, lcap * sizeof *lens);
            if (!p) cli_die("out of memory");
            lens = p;
        }
        lens[r.docs - 1] = n;
        ntok += n;
        text += nbytes;
        if (keep && nkeep < (uint64_t)show_docs && nkeep < 1024) {
            keep[nkeep].ids = malloc((size_t)n * sizeof *ids);
            if (!keep[nkeep].ids) cli_die("out of memory");
            memcpy(keep[nkeep].ids, ids, (size_t)n * sizeof *ids);
            keep[nkeep].n = n;
            keep[nkeep++].nbytes = nbytes;
        }
    }
    fclose(f);
    free(ids);
    if (rc == 0) {
        rec_begin(path);
        rec_str("format", "ttt token stream");
        rec_u64("tokens", ntok);
        rec_u64("documents", r.docs);
        rec_hex("tokenizer_hash", r.hdr.tok_hash);
        rec_u64("vocab", r.hdr.vocab);
        rec_u64("eot", r.hdr.eot);
        rec_u64("text_bytes", text);
        if (ntok) {
            double bpt = (double)text / (double)ntok;
            rec_num("bytes_per_token", bpt, "%.3f", bpt);
        }
        rec_doc_lengths(lens, r.docs);
        /* reading the stream is its whole check: it carries no checksums */
        if (verify) rec_bool("verified", 1);
        rc = show_docs > 0 ? check_tokenizer(path, r.hdr.tok_hash, r.hdr.vocab) : 0;
        for (uint64_t d = 0; !rc && d < nkeep; d++) rec_doc(d, keep[d].ids, keep[d].n, keep[d].nbytes, r.hdr.eot, d == 0);
        rec_docs_end(!rc && nkeep > 0);
        rec_end(rc ? ttt_errmsg() : NULL);
    }
    for (uint64_t d = 0; d < nkeep; d++) free(keep[d].ids);
    free(keep);
    free(lens);
    return rc;
}

static int inspect_tokenizer(const char *path)
{
    ttt_tokenizer *t = ttt_tokenizer_load(path);
    if (!t) return -1;
    rec_begin(path);
    rec_str("format", "tokenizer.json (byte-level BPE)");
    rec_u64("vocab", ttt_tokenizer_vocab_size(t));
    rec_hex("tokenizer_hash", ttt_tokenizer_hash(t));
    rec_u64("eot", ttt_tokenizer_eot(t));
    if (verify) rec_bool("verified", 1);   /* loading checks it completely */
    rec_end(NULL);
    ttt_tokenizer_free(t);
    return 0;
}

/* ---- safetensors: shared pieces ---- */

/* --verify: checks every stored checksum in file order; *nsum gets how many
 * tensors carry one. 0, or -1 naming the first damaged tensor (or, when
 * require_all, the first tensor without a checksum: our writers always
 * store one). */
static int st_verify(const ttt_st *st, int require_all, int *nsum)
{
    char key[1100];
    *nsum = 0;
    for (int i = 0; i < ttt_st_count(st); i++) {
        const ttt_st_tensor *t = ttt_st_at(st, i);
        snprintf(key, sizeof key, "xxh3.%s", t->name);
        if (!ttt_st_meta(st, key)) {
            if (require_all)
                return ttt_seterr("%s: tensor %s: no stored checksum (xxh3.%s missing from __metadata__)",
                                  ttt_st_path(st), t->name, t->name);
            continue;
        }
        if (ttt_st_verify_tensor(st, t) < 0) return -1;
        ++*nsum;
    }
    return 0;
}

static const ttt_st_tensor *st_find(const ttt_st *st, const char *name)
{
    const ttt_st_tensor *t = ttt_st_find(st, name);
    if (!t) ttt_seterr("%s: no tensor named '%s'", ttt_st_path(st), name);
    return t;
}

/* Parses the "config" metadata; *j (may be NULL) keeps the DOM. */
static int st_config(const ttt_st *st, ttt_config *c, json **j)
{
    const char *cfg = ttt_st_meta(st, "config");
    if (!cfg) return ttt_seterr("%s: no \"config\" in __metadata__", ttt_st_path(st));
    json *d = json_parse(cfg, strlen(cfg));
    if (!d) return ttt_preferr("%s: metadata config", ttt_st_path(st));
    if (ttt_config_from_json(c, d) < 0) { json_free(d); return ttt_preferr("%s: metadata config", ttt_st_path(st)); }
    if (j) *j = d;
    else json_free(d);
    return 0;
}

static int parse_meta_ll(const ttt_st *st, const char *key, long long *v)
{
    const char *s = ttt_st_meta(st, key);
    char *end;
    errno = 0;
    long long x = s ? strtoll(s, &end, 10) : -1;
    if (!s || !*s || *end || errno || x < 0)
        return ttt_seterr("%s: metadata %s %s%s%s is not a count", ttt_st_path(st), key,
                          s ? "'" : "", s ? s : "missing", s ? "'" : "");
    *v = x;
    return 0;
}

/* --tensor: the one tensor's dtype, shape and statistics as the record's fields */
static void rec_only_tensor(const ttt_st *st, const ttt_st_tensor *t)
{
    ttt_tstats s;
    ttt_tstats_of(st, t, &s);
    rec_tensor_fields(t, &s);
}

/* --verify's outcome: vrc from st_verify, nsum the tensors it checked */
static void rec_verified(int vrc, int nsum)
{
    rec_bool("verified", vrc == 0);
    if (!vrc && !json_out) { rec_key("checksums"); printf("%d tensors, all match\n", nsum); }
}

/* The header and statistics of every tensor (or of the --tensor one). */
static void rec_tensor_table(const ttt_st *st, int with_group)
{
    int w = 6;
    for (int i = 0; i < ttt_st_count(st); i++) {
        int n = (int)strlen(ttt_st_at(st, i)->name);
        if (n > w) w = n;
    }
    if (json_out) fputs(",\"tensors\":[", stdout);
    else printf("\n%-*s %-5s %-15s %11s %11s %11s %11s %11s\n", w, "tensor", "dtype", "shape", "mean", "std", "min", "max", "norm");
    for (int i = 0; i < ttt_st_count(st); i++) {
        const ttt_st_tensor *t = ttt_st_at(st, i);
        ttt_tstats s;
        ttt_tstats_of(st, t, &s);
        rec_tensor(t, &s, with_group, w, i == 0);
        cli_check_stdout();
    }
    if (json_out) putchar(']');
}

/* ---- checkpoints ---- */

static int inspect_checkpoint(const char *path)
{
    ttt_st *st = ttt_st_open(path, 0);
    if (!st) return -1;
    ttt_config c;
    json *cj = NULL;
    long long step = 0;
    int rc = st_config(st, &c, &cj);
    if (!rc && ttt_st_meta(st, "step")) rc = parse_meta_ll(st, "step", &step);
    const ttt_st_tensor *only = NULL;
    if (!rc && tensor_name && !(only = st_find(st, tensor_name))) rc = -1;
    if (rc) { json_free(cj); ttt_st_close(st); return -1; }

    int nsum = 0, vrc = verify ? st_verify(st, 1, &nsum) : 0;
    rec_begin(ttt_st_path(st));
    rec_str("format", "ttt checkpoint");
    if (only) {
        rec_only_tensor(st, only);
    } else {
        rec_u64("step", (uint64_t)step);
        const char *th = ttt_st_meta(st, "tokenizer_hash");
        if (th) rec_hex("tokenizer_hash", strtoull(th, NULL, 16));
        rec_config(cj, &c);
        uint64_t per_layer[TTT_G_COUNT] = { 0 }, total[TTT_G_COUNT] = { 0 }, params = 0;
        for (int i = 0; i < ttt_st_count(st); i++) {
            const ttt_st_tensor *t = ttt_st_at(st, i);
            int layer, g = ttt_group_of(t->name, &layer);
            total[g] += t->numel;
            if (layer == 0) per_layer[g] += t->numel;
            params += t->numel;
        }
        rec_u64("parameters", params);
        rec_u64("tensor_count", (uint64_t)ttt_st_count(st));
        rec_groups(per_layer, total, params);
    }
    if (verify) rec_verified(vrc, nsum);
    if (!only) rec_tensor_table(st, 1);
    rec_end(vrc ? ttt_errmsg() : NULL);
    json_free(cj);
    ttt_st_close(st);
    return vrc;
}

/* ---- fast-weight states ---- */

static int inspect_state(const char *path)
{
    ttt_st *st = ttt_st_open(path, 0);
    if (!st) return -1;
    ttt_config c;
    json *cj = NULL;
    long long pos = 0, batch = 0;
    int rc = st_config(st, &c, &cj);
    if (!rc) rc = parse_meta_ll(st, "position", &pos);
    if (!rc) rc = parse_meta_ll(st, "batch", &batch);
    const char *mh = ttt_st_meta(st, "model_hash");
    if (!rc && (!mh || strlen(mh) != 16 || strspn(mh, "0123456789abcdef") != 16)) rc = ttt_seterr("%s: metadata model_hash missing or not 16 hex digits", path);
    const ttt_st_tensor *only = NULL;
    if (!rc && tensor_name && !(only = st_find(st, tensor_name))) rc = -1;
    /* -m: the state must come from that checkpoint, or the distances are nonsense */
    if (!rc && model && strcmp(mh, model_hash_hex) != 0)
        rc = ttt_seterr("%s: state was saved from another checkpoint (model hash %s, %s has %s)", path, mh,
                        model_path, model_hash_hex);
    ttt_fw_row *rows = NULL;
    int nrows = 0;
    if (!rc && !only) rc = ttt_fw_rows(st, model, &c, (long)pos, &rows, &nrows);
    if (rc) { json_free(cj); ttt_st_close(st); return -1; }

    int nsum = 0, vrc = verify ? st_verify(st, 1, &nsum) : 0;
    rec_begin(path);
    rec_str("format", "ttt fast-weight state");
    if (only) {
        rec_only_tensor(st, only);
    } else {
        rec_u64("position", (uint64_t)pos);
        int K = c.mini_batch_size, fill = (int)(pos % K);
        if (json_out) { rec_u64("mini_batch_fill", (uint64_t)fill); rec_u64("mini_batch_size", (uint64_t)K); }
        else { rec_key("mini_batch_fill"); printf("%d of %d tokens%s\n", fill, K, fill ? "" : " (at a mini-batch boundary)"); }
        rec_u64("batch", (uint64_t)batch);
        rec_hex("model_hash", strtoull(mh, NULL, 16));
        if (model) {
            if (json_out) { rec_str("checkpoint", model_path); rec_key("model_hash_match"); fputs("true", stdout); }
            else { rec_key("checkpoint"); printf("%s (model hash matches)\n", model_path); }
        }
        const ttt_st_tensor *lt = ttt_st_find(st, "last_token");
        if (lt && lt->numel == 1) {
            double v;
            ttt_inspect_convert(st, lt, 0, 1, &v);
            rec_key("last_token");
            printf(json_out ? "%.0f" : "%.0f\n", v);
        }
        rec_config(cj, &c);
        rec_u64("tensor_count", (uint64_t)ttt_st_count(st));
    }
    if (verify) rec_verified(vrc, nsum);
    if (!only) {
        rec_fw(rows, nrows, model != NULL);
        rec_tensor_table(st, 0);
    }
    rec_end(vrc ? ttt_errmsg() : NULL);
    free(rows);
    json_free(cj);
    ttt_st_close(st);
    return vrc;
}

/* Generic safetensors facts (files from elsewhere, optimizer states). */
static int inspect_safetensors(const char *path)
{
    ttt_st *st = ttt_st_open(path, verify ? TTT_ST_VERIFY : 0);
    if (!st) return -1;
    const ttt_st_tensor *only = NULL;
    if (tensor_name && !(only = st_find(st, tensor_name))) { ttt_st_close(st); return -1; }
    uint64_t params = 0, bytes = 0;
    for (int i = 0; i < ttt_st_count(st); i++) {
        params += ttt_st_at(st, i)->numel;
        bytes += ttt_st_at(st, i)->end - ttt_st_at(st, i)->begin;
    }
    rec_begin(path);
    rec_str("format", "safetensors");
    const char *fmt = ttt_st_meta(st, "format");
    if (fmt) rec_str("metadata_format", fmt);
    if (only) {
        rec_only_tensor(st, only);
    } else {
        rec_u64("tensors", (uint64_t)ttt_st_count(st));
        rec_u64("parameters", params);
        rec_u64("tensor_bytes", bytes);
        rec_u64("metadata_keys", (uint64_t)ttt_st_meta_count(st));
    }
    if (verify) rec_bool("verified", 1);   /* TTT_ST_VERIFY checked every stored xxh3 at open */
    rec_end(NULL);
    ttt_st_close(st);
    return 0;
}

typedef enum { K_SHARD, K_STREAM, K_TOKENIZER, K_CHECKPOINT, K_STATE, K_SAFETENSORS, K_NKINDS } kind;

static const struct {
    const char *name;
    int (*inspect)(const char *path);
} kinds[K_NKINDS] = {
    [K_SHARD] = { "shard", inspect_shard },
    [K_STREAM] = { "token stream", inspect_stream },
    [K_TOKENIZER] = { "tokenizer.json", inspect_tokenizer },
    [K_CHECKPOINT] = { "checkpoint", inspect_checkpoint },
    [K_STATE] = { "fast-weight state", inspect_state },
    [K_SAFETENSORS] = { "safetensors", inspect_safetensors },
};

/* Which safetensors: the metadata "format" written by checkpoint.c/state.c. */
static int detect_safetensors(const char *path)
{
    ttt_st *st = ttt_st_open(path, 0);
    if (!st) return -1;
    const char *fmt = ttt_st_meta(st, "format");
    int k = K_SAFETENSORS;
    if (fmt && !strcmp(fmt, "ttt-decode-state")) k = K_STATE;
    else if (fmt && !strcmp(fmt, "pt") && ttt_st_meta(st, "config")) k = K_CHECKPOINT;
    ttt_st_close(st);
    return k;
}

/* The kind of path from its first bytes, or -1 with ttt_errmsg set. A
 * RUNDIR stands for its model file, written into buf. */
static int detect(const char **path, char *buf, size_t bufsize)
{
    struct stat st;
    if (stat(*path, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (!ttt_ckpt_is_run(*path)) return ttt_seterr("%s: is a directory (not a run directory: no model.safetensors)", *path);
        if (ttt_ckpt_model_path(*path, buf, bufsize) < 0) return -1;
        *path = buf;
    }
    FILE *f = fopen(*path, "rb");
    if (!f) return ttt_seterr("%s: %s", *path, strerror(errno));
    unsigned char h[64];
    size_t n = fread(h, 1, sizeof h, f);
    int err = ferror(f);
    fclose(f);
    if (err) return ttt_seterr("%s: read error", *path);
    if (n == 0) return ttt_seterr("%s: empty file", *path);
    if (n >= 7 && !memcmp(h, "\x89TTTSHD", 7)) return K_SHARD;
    if (n >= 8 && !memcmp(h, TTT_TOKSTREAM_MAGIC, 8)) return K_STREAM;
    const char *foreign = ttt_foreign_format(h, n);
    if (foreign && !strcmp(foreign, "safetensors")) return detect_safetensors(*path);
    if (foreign) return ttt_seterr("%s: a %s file, not a ttt file", *path, foreign);
    size_t i = 0;
    if (n >= 3 && !memcmp(h, "\xef\xbb\xbf", 3)) i = 3;   /* UTF-8 BOM */
    while (i < n && (h[i] == ' ' || h[i] == '\t' || h[i] == '\n' || h[i] == '\r')) i++;
    if (i < n && h[i] == '{') return K_TOKENIZER;
    return ttt_seterr("%s: unknown format (not a shard, token stream, tokenizer.json or safetensors file)", *path);
}

/* ---- --npy ---- */

static int export_npy(const char *arg)
{
    char buf[4096];
    const char *path = arg;
    int k = detect(&path, buf, sizeof buf);
    if (k < 0) return -1;
    if (k != K_CHECKPOINT && k != K_STATE && k != K_SAFETENSORS)
        return ttt_seterr("%s: --npy exports tensors of safetensors files, this is a %s", path, kinds[k].name);
    ttt_st *st = ttt_st_open(path, 0);
    if (!st) return -1;
    const ttt_st_tensor *t = st_find(st, tensor_name);
    int rc = t ? 0 : -1;
    /* a damaged tensor is not exported silently */
    if (!rc) rc = ttt_st_verify_tensor(st, t);
    if (!rc) {
        cli_refuse_npy_tty();
        rc = ttt_npy_write(stdout, st, t);
        if (rc) cli_check_stdout();   /* EPIPE ends quietly, else exit 1 */
    }
    ttt_st_close(st);
    return rc;
}

/* ---- --diff ---- */

typedef struct { uint64_t compared, differ, only_a, only_b, meta; double max_abs; } diff_sum;

static int is_checksum_key(const char *k) { return !strncmp(k, "xxh3.", 5); }

/* 0 identical, 1 different, -1 trouble (ttt_errmsg). */
static int diff_files(const char *a_arg, const char *b_arg)
{
    char ba[4096], bb[4096];
    const char *pa = a_arg, *pb = b_arg;
    int ka = detect(&pa, ba, sizeof ba);
    if (ka < 0) return -1;
    int kb = detect(&pb, bb, sizeof bb);
    if (kb < 0) return -1;
    for (int i = 0; i < 2; i++) {
        int k = i ? kb : ka;
        if (k != K_CHECKPOINT && k != K_STATE && k != K_SAFETENSORS)
            return ttt_seterr("%s: --diff compares checkpoints and states, this is a %s", i ? pb : pa, kinds[k].name);
    }
    ttt_st *a = ttt_st_open(pa, 0), *b = a ? ttt_st_open(pb, 0) : NULL;
    int rc = -1, nsum;
    diff_sum s = { 0 };
    if (!a || !b) goto out;
    if (verify && (st_verify(a, 0, &nsum) < 0 || st_verify(b, 0, &nsum) < 0)) goto out;
    const ttt_st_tensor *only_t = NULL;
    if (tensor_name) {
        if (!(only_t = st_find(a, tensor_name)) || !st_find(b, tensor_name)) goto out;
    }
    int w = 6;
    for (int i = 0; i < ttt_st_count(a); i++) if ((int)strlen(ttt_st_at(a, i)->name) > w) w = (int)strlen(ttt_st_at(a, i)->name);
    for (int i = 0; i < ttt_st_count(b); i++) if ((int)strlen(ttt_st_at(b, i)->name) > w) w = (int)strlen(ttt_st_at(b, i)->name);

    rec_diff_begin(pa, pb, w);
    int first = 1;
    for (int i = 0; i < ttt_st_count(a); i++) {
        const ttt_st_tensor *ta = ttt_st_at(a, i);
        if (only_t && ta != only_t) continue;
        const ttt_st_tensor *tb = ttt_st_find(b, ta->name);
        if (!tb) { s.only_a++; rec_diff_tensor(ta->name, "only_a", NULL, NULL, w, first); first = 0; continue; }
        ttt_tdiff d;
        s.compared++;
        if (ttt_tdiff_of(a, ta, b, tb, &d) < 0) {
            s.differ++;
            rec_diff_tensor(ta->name, "shape", ttt_errmsg(), NULL, w, first);
        } else {
            if (!d.identical) s.differ++;
            /* the summary speaks of values: rng words and token ids would drown them */
            int fl = ta->dtype <= TTT_ST_BF16 && tb->dtype <= TTT_ST_BF16;
            if (fl && d.max_abs > s.max_abs) s.max_abs = d.max_abs;
            rec_diff_tensor(ta->name, d.identical ? "identical" : "differ", NULL, &d, w, first);
        }
        first = 0;
    }
    for (int i = 0; !only_t && i < ttt_st_count(b); i++) {
        const ttt_st_tensor *tb = ttt_st_at(b, i);
        if (ttt_st_find(a, tb->name)) continue;
        s.only_b++;
        rec_diff_tensor(tb->name, "only_b", NULL, NULL, w, first);
        first = 0;
    }
    rec_diff_list_end();
    /* metadata (step, position, config, ...) but not the checksums, which
     * only repeat what the tensor comparison says */
    first = 1;
    for (int i = 0; !only_t && i < ttt_st_meta_count(a); i++) {
        const char *k = ttt_st_meta_key(a, i), *va = ttt_st_meta(a, k), *vb = ttt_st_meta(b, k);
        if (is_checksum_key(k) || (vb && !strcmp(va, vb))) continue;
        s.meta++;
        rec_diff_meta(k, va, vb, first);
        first = 0;
    }
    for (int i = 0; !only_t && i < ttt_st_meta_count(b); i++) {
        const char *k = ttt_st_meta_key(b, i);
        if (is_checksum_key(k) || ttt_st_meta(a, k)) continue;
        s.meta++;
        rec_diff_meta(k, NULL, ttt_st_meta(b, k), first);
        first = 0;
    }
    int same = !s.differ && !s.only_a && !s.only_b && !s.meta;
    rec_diff_end(s.compared, s.differ, s.only_a, s.only_b, s.meta, s.max_abs, same, !first);
    rc = same ? 0 : 1;
out:
    ttt_st_close(a);
    ttt_st_close(b);
    return rc;
}

int main(int argc, char **argv)
{
    cli_init(&prog);
    int c, diff = 0, npy = 0, force = 0;
    while ((c = cli_next(argc, argv)) != -1) {
        switch (c) {
        case OPT_JSON: json_out = 1; break;
        case OPT_VERIFY: verify = 1; break;
        case 't': tokenizer_path = optarg; break;
        case OPT_DOCS: show_docs = cli_count("--docs", optarg, 0, 1000000000LL); break;
        case 'm': model_path = optarg; break;
        case OPT_DIFF: diff = 1; break;
        case OPT_TENSOR: tensor_name = optarg; break;
        case OPT_NPY: npy = 1; break;
        case 'f': force = 1; break;
        }
    }
    if (optind >= argc) cli_usage_error("no FILE given");
    if (tokenizer_path && !show_docs) cli_usage_error("-t/--tokenizer is only used with --docs N");
    if (npy && !tensor_name) cli_usage_error("--npy needs --tensor NAME");
    if (npy && (json_out || diff)) cli_usage_error("--npy writes the tensor itself; it cannot be combined with %s",
                                                   json_out ? "--json" : "--diff");
    if (npy && argc - optind != 1) cli_usage_error("--npy exports from exactly one FILE (got %d)", argc - optind);
    if (diff && argc - optind != 2) cli_usage_error("--diff compares exactly two FILEs (got %d)", argc - optind);
    if (diff && (show_docs || model_path)) cli_usage_error("--diff cannot be combined with %s", show_docs ? "--docs" : "-m");
    if (force && !npy) cli_usage_error("-f/--force is only used with --npy");
    npy_force = force;

    if (npy) {
        if (export_npy(argv[optind]) < 0) cli_die_lib();
        return 0;
    }
    if (diff) {
        int r = diff_files(argv[optind], argv[optind + 1]);
        if (r < 0) {
            fflush(stdout);
            fprintf(stderr, "%s: %s\n", cli_prog(), ttt_errmsg());
            return 2;   /* like cmp(1) and diff(1): trouble */
        }
        cli_check_stdout();
        return r;
    }
    if (tokenizer_path && !(tokenizer = ttt_tokenizer_load(tokenizer_path))) cli_die_lib();
    if (model_path) {
        if (!(model = ttt_ckpt_load_model(model_path, NULL, NULL))) cli_die_lib();
        snprintf(model_hash_hex, sizeof model_hash_hex, "%016llx", (ull)ttt_state_model_hash(model));
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        char buf[4096];
        const char *path = argv[i];
        if (!json_out && i > optind) putchar('\n');
        int k = detect(&path, buf, sizeof buf);
        if (k >= 0 && tensor_name && k != K_CHECKPOINT && k != K_STATE && k != K_SAFETENSORS)
            k = ttt_seterr("%s: --tensor names a tensor of a safetensors file, this is a %s", path, kinds[k].name);
        if (k < 0 || kinds[k].inspect(path) != 0) {
            fflush(stdout);
            fprintf(stderr, "%s: %s\n", cli_prog(), ttt_errmsg());
            status = 1;
        }
        cli_check_stdout();
    }
    if (tokenizer) ttt_tokenizer_free(tokenizer);
    if (model) ttt_model_free(model);
    return status;
}
