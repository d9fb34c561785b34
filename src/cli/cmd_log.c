/*
 * cmd_log.c - `tern log list|append|dump|delete`.
 *
 * Each command opens the data directory with store_open(NULL, ...): synchronous, no event loop,
 * holding the directory's lock for the life of the command, so it refuses to run while ternd
 * (or another tern) has the directory open. Appends are fsynced (log_sync) before success is
 * reported; every command closes the store cleanly (checkpoint + clean-shutdown marker), also
 * after Ctrl-C.
 */
#include "cli/cmd_log.h"

#include "base/clock.h"
#include "base/tern.h"
#include "cli/cmd.h"
#include "os/file.h"
#include "store/batch.h"
#include "store/log.h"
#include "store/store.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DUMP_READ_BYTES (1u << 20)   /* bytes asked of log_read per round */
#define STDIN_MAX_BYTES (256u << 20) /* refuse larger input than this before encoding */
#define RECORD_MAX_OVERHEAD 40u      /* varints + attributes of one record, generously */

struct opts {
    const char *data_dir;
    const char *key;
    int64_t from; /* -1: from the start */
    int64_t max;  /* -1: no limit */
    bool verbose;
};

/* Every option of the log commands; a command accepts the ones whose letter is in its list. */
static const struct option all_options[] = {
    {"data-dir", required_argument, NULL, 'd'}, {"key", required_argument, NULL, 'k'},
    {"from", required_argument, NULL, 'f'},     {"max", required_argument, NULL, 'n'},
    {"verbose", no_argument, NULL, 'v'},        {"help", no_argument, NULL, 'h'},
};

/* ---- usage ------------------------------------------------------------------------------- */

static const char log_usage[] =
    "Usage: tern log <command> [options]\n"
    "\n"
    "Works on the logs of a data directory directly; stop ternd on that directory first.\n"
    "\n"
    "Commands:\n"
    "  list     list the logs: name, start and end offset, bytes, segments\n"
    "  append   append records to a log (created if missing)\n"
    "  dump     print the records of a log\n"
    "  delete   delete a log and its files\n"
    "\n"
    "Run 'tern log <command> --help' for the options of a command.\n";

static const char common_help[] =
    "  -d, --data-dir DIR   data directory (default " CMD_DEFAULT_DATA_DIR ")\n"
    "  -v, --verbose        print the store's log lines (recovery, truncation) to stderr\n"
    "  -h, --help           show this help\n";

static const char list_usage[] = "Usage: tern log list [--data-dir DIR]\n"
                                 "\n"
                                 "Prints one line per log:\n"
                                 "  name=NAME start_offset=N end_offset=N bytes=N segments=N\n"
                                 "and for a log refused at open because it is corrupt:\n"
                                 "  name=NAME refused=true reason=\"...\"\n"
                                 "\n"
                                 "Options:\n";

static const char append_usage[] =
    "Usage: tern log append [--data-dir DIR] [--key KEY] NAME [VALUE ...]\n"
    "\n"
    "Appends each VALUE as one record of log NAME, all in one batch; without VALUE, each line\n"
    "of standard input (without its newline) is one record. The log is created if missing.\n"
    "Records get the current time as timestamp. Once the batch is on disk, prints\n"
    "  appended base_offset=N last_offset=M\n"
    "Use -- before values that start with '-'.\n"
    "\n"
    "Options:\n"
    "  -k, --key KEY        key of every record (default: null key)\n";

static const char dump_usage[] =
    "Usage: tern log dump [--data-dir DIR] [--from OFFSET] [--max N] NAME\n"
    "\n"
    "Prints the records of log NAME, one per line:\n"
    "  offset=N timestamp=MS key=KEY value=VALUE [header.KEY=VALUE ...]\n"
    "Bytes outside printable ASCII are written as \\xNN and a backslash as \\\\; a null key or\n"
    "value is written as null.\n"
    "\n"
    "Options:\n"
    "  -f, --from OFFSET    start at this offset (default: the log's start)\n"
    "  -n, --max N          print at most N records\n";

static const char delete_usage[] = "Usage: tern log delete [--data-dir DIR] NAME\n"
                                   "\n"
                                   "Deletes log NAME and all its files.\n"
                                   "\n"
                                   "Options:\n";

/* ---- option parsing ------------------------------------------------------------------------ */

static void print_usage(const char *usage)
{
    fputs(usage, stdout);
    fputs(common_help, stdout);
}

static int apply_option(int c, const char *arg, struct opts *o)
{
    switch (c) {
    case 'd':
        o->data_dir = arg;
        return 0;
    case 'k':
        o->key = arg;
        return 0;
    case 'f':
        return cmd_parse_int64("--from", arg, 0, INT64_MAX, &o->from);
    case 'n':
        return cmd_parse_int64("--max", arg, 1, INT64_MAX, &o->max);
    case 'v':
        o->verbose = true;
        return 0;
    default:
        return -1;
    }
}

/*
 * Parses the options of `tern log <cmd>` (letters: the options it accepts). Returns -1 to go
 * on (operands start at optind), or the exit code to return at once (help or bad usage).
 */
static int parse_options(int argc, char **argv, const char *cmd, const char *letters,
                         const char *usage, struct opts *o)
{
    struct option longopts[TERN_ARRAY_LEN(all_options) + 1];
    char shortopts[2 * TERN_ARRAY_LEN(all_options) + 1];
    size_t n = 0, ns = 0;
    for (size_t i = 0; i < TERN_ARRAY_LEN(all_options); i++) {
        if (!strchr(letters, all_options[i].val))
            continue;
        longopts[n++] = all_options[i];
        shortopts[ns++] = (char)all_options[i].val;
        if (all_options[i].has_arg == required_argument)
            shortopts[ns++] = ':';
    }
    memset(&longopts[n], 0, sizeof(longopts[n]));
    shortopts[ns] = '\0';

    *o = (struct opts){.data_dir = CMD_DEFAULT_DATA_DIR, .from = -1, .max = -1};
    char full[32];
    snprintf(full, sizeof(full), "log %s", cmd);
    bool first = true;
    int c;
    while ((c = cmd_getopt(full, argc, argv, shortopts, longopts, &first)) != -1) {
        if (c == 'h') {
            print_usage(usage);
            return CMD_EXIT_OK;
        }
        if (c == '?' || c == ':') {
            fprintf(stderr, "Try 'tern log %s --help' for more information.\n", cmd);
            return CMD_EXIT_USAGE;
        }
        if (apply_option(c, optarg, o) < 0) {
            fprintf(stderr, "Try 'tern log %s --help' for more information.\n", cmd);
            return CMD_EXIT_USAGE;
        }
    }
    return -1;
}

/* Checks the operand count and the log name; returns -1 to go on or CMD_EXIT_USAGE. */
static int check_operands(int argc, char **argv, const char *cmd, int min, int max)
{
    int n = argc - optind;
    char full[32];
    snprintf(full, sizeof(full), "log %s", cmd);
    if (n < min)
        return cmd_usage_error(full, "log %s: missing log NAME", cmd);
    if (max >= 0 && n > max)
        return cmd_usage_error(full, "log %s: unexpected argument '%s'", cmd, argv[optind + max]);
    if (min > 0 && !store_name_valid(argv[optind]))
        return cmd_usage_error(full,
                               "invalid log name '%s': use 1-200 characters of A-Z a-z 0-9 . _ - "
                               "(not . or ..)",
                               argv[optind]);
    return -1;
}

/* ---- shared: finding a log ----------------------------------------------------------------- */

/* The reason log name was refused at open, or NULL if it was not. */
static const char *refused_reason(struct store *st, const char *name)
{
    for (size_t i = 0; i < store_refused_count(st); i++) {
        if (strcmp(store_refused_name(st, i), name) == 0)
            return store_refused_reason(st, i);
    }
    return NULL;
}

/* The open log name; prints why not and returns NULL when it is missing or refused. */
static struct log *find_log(struct store *st, const char *dir, const char *name)
{
    struct log *log = store_log_find(st, name);
    if (log)
        return log;
    const char *reason = refused_reason(st, name);
    if (reason)
        cmd_error("log %s is refused (corrupt): %s", name, reason);
    else
        cmd_error("no log named %s in %s", name, dir);
    return NULL;
}

static int stdout_errno; /* errno of the first failed write to stdout */

/* True once a write to stdout failed (a closed pipe, a full disk). */
static bool stdout_failed(void)
{
    if (ferror(stdout) && stdout_errno == 0)
        stdout_errno = errno ? errno : EIO;
    return stdout_errno != 0;
}

/* Flushes stdout; a closed pipe (`| head`) is not an error. Returns 0 or -1 (reported). */
static int finish_stdout(void)
{
    if (!stdout_failed() && fflush(stdout) != 0)
        stdout_failed();
    if (stdout_errno == 0 || stdout_errno == EPIPE)
        return 0;
    cmd_error("cannot write to standard output: %s", strerror(stdout_errno));
    return -1;
}

/* ---- list ---------------------------------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The sorted names of every log the store found, open or refused; *n_out entries. The names
 * belong to the store: free only the array. */
static const char **log_names(const struct store *st, size_t *n_out)
{
    size_t open = store_log_count(st), refused = store_refused_count(st);
    const char **names = tern_xcalloc(open + refused + 1, sizeof(*names));
    for (size_t i = 0; i < open; i++)
        names[i] = store_log_name(st, i);
    for (size_t i = 0; i < refused; i++)
        names[open + i] = store_refused_name(st, i);
    qsort(names, open + refused, sizeof(*names), cmp_names);
    *n_out = open + refused;
    return names;
}

static void print_log_line(struct store *st, const char *name)
{
    struct log *log = store_log_find(st, name);
    const char *reason;
    if (log) {
        printf("name=%s start_offset=%" PRId64 " end_offset=%" PRId64 " bytes=%" PRIu64
               " segments=%d\n",
               name, log_start_offset(log), log_end_offset(log), log_size_bytes(log),
               log_segment_count(log));
    } else if ((reason = refused_reason(st, name)) != NULL) {
        printf("name=%s refused=true reason=\"", name);
        cmd_print_escaped(stdout, (const uint8_t *)reason, strlen(reason));
        printf("\"\n");
    }
}

static int run_list(int argc, char **argv)
{
    struct opts o;
    int rc = parse_options(argc, argv, "list", "dvh", list_usage, &o);
    if (rc >= 0)
        return rc;
    if ((rc = check_operands(argc, argv, "list", 0, 0)) >= 0)
        return rc;
    struct store *st;
    if (cmd_store_open(o.data_dir, true, o.verbose, &st) < 0)
        return CMD_EXIT_FAIL;
    size_t n;
    const char **names = log_names(st, &n);
    for (size_t i = 0; i < n; i++)
        print_log_line(st, names[i]);
    free(names);
    store_close(st, NULL, NULL);
    return finish_stdout() < 0 ? CMD_EXIT_FAIL : CMD_EXIT_OK;
}

/* ---- append -------------------------------------------------------------------------------- */

/* Records to append: pointers into argv or into the stdin buffer. */
struct records {
    struct batch_rec_in *recs;
    int n, cap;
    char *input; /* owned stdin bytes, or NULL */
};

/* Reads all of stdin into a malloc'd buffer. Returns 0 or -1 (reported). */
static int read_stdin(char **out, size_t *len_out)
{
    size_t len = 0, cap = 64 * 1024;
    char *buf = tern_xmalloc(cap);
    for (;;) {
        if (len == cap) {
            if (cap >= STDIN_MAX_BYTES) {
                cmd_error("standard input exceeds %u bytes; append it in parts", STDIN_MAX_BYTES);
                goto fail;
            }
            cap *= 2;
            buf = tern_xrealloc(buf, cap);
        }
        ssize_t n = read(STDIN_FILENO, buf + len, cap - len);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR && !cmd_interrupted())
            continue;
        if (n < 0) {
            if (!cmd_interrupted())
                cmd_error("cannot read standard input: %s", strerror(errno));
            goto fail;
        }
        len += (size_t)n;
    }
    *out = buf;
    *len_out = len;
    return 0;
fail:
    free(buf);
    return -1;
}

static void add_record(struct records *r, const char *value, size_t len, const char *key)
{
    if (r->n == r->cap) {
        r->cap = r->cap ? 2 * r->cap : 16;
        r->recs = tern_xrealloc(r->recs, (size_t)r->cap * sizeof(*r->recs));
    }
    r->recs[r->n++] = (struct batch_rec_in){
        .key = key,
        .key_len = key ? (int32_t)strlen(key) : -1,
        .value = value,
        .value_len = (int32_t)len,
    };
}

/* Splits stdin into one record per line (the last line needs no newline). */
static int records_from_stdin(struct records *r, const char *key)
{
    size_t len;
    if (read_stdin(&r->input, &len) < 0)
        return -1;
    size_t start = 0;
    while (start < len) {
        char *nl = memchr(r->input + start, '\n', len - start);
        size_t end = nl ? (size_t)(nl - r->input) : len;
        add_record(r, r->input + start, end - start, key);
        start = end + 1;
    }
    return 0;
}

/* Encodes r into one batch (timestamps = now). Returns the malloc'd batch and its size. */
static void *encode_records(struct records *r, int64_t *size_out)
{
    int64_t now = clock_wall_ms();
    size_t cap = BATCH_HEADER_SIZE;
    for (int i = 0; i < r->n; i++) {
        r->recs[i].timestamp = now;
        cap += RECORD_MAX_OVERHEAD + (size_t)(r->recs[i].key_len > 0 ? r->recs[i].key_len : 0) +
               (size_t)r->recs[i].value_len;
    }
    if (cap > INT32_MAX) {
        cmd_error("records too large for one batch (%zu bytes)", cap);
        return NULL;
    }
    void *buf = tern_xmalloc(cap);
    int64_t size = batch_encode(buf, cap, r->recs, r->n);
    if (size < 0) {
        cmd_error("cannot encode the batch: %s", tern_strerror((int)size));
        free(buf);
        return NULL;
    }
    *size_out = size;
    return buf;
}

/* Appends the batch to log name (creating it) and fsyncs. Returns 0 or -1 (reported). */
static int append_batch(struct store *st, const char *dir, const char *name, void *batch,
                        int64_t size)
{
    struct log *log;
    int rc = store_log(st, name, NULL, &log);
    if (rc == TERN_ECORRUPT) {
        const char *reason = refused_reason(st, name);
        cmd_error("log %s is refused (corrupt): %s", name, reason ? reason : tern_strerror(rc));
        return -1;
    }
    if (rc < 0) {
        cmd_error("cannot open log %s in %s: %s", name, dir, tern_strerror(rc));
        return -1;
    }
    struct log_append_info info;
    rc = log_append(log, batch, (size_t)size, clock_wall_ms(), &info);
    if (rc == TERN_ETOOBIG) {
        cmd_error("batch of %" PRId64 " bytes exceeds the log's maximum of %u bytes", size,
                  log_get_config(log)->max_batch_bytes);
        return -1;
    }
    if (rc == 0)
        rc = log_sync(log);
    if (rc < 0) {
        cmd_error("cannot append to log %s: %s", name, tern_strerror(rc));
        return -1;
    }
    printf("appended base_offset=%" PRId64 " last_offset=%" PRId64 "\n", info.base_offset,
           info.last_offset);
    return 0;
}

static int run_append(int argc, char **argv)
{
    struct opts o;
    int rc = parse_options(argc, argv, "append", "dkvh", append_usage, &o);
    if (rc >= 0)
        return rc;
    if ((rc = check_operands(argc, argv, "append", 1, -1)) >= 0)
        return rc;
    const char *name = argv[optind];
    struct records r = {0};
    void *batch = NULL;
    int64_t size;
    struct store *st = NULL;
    rc = CMD_EXIT_FAIL;

    for (int i = optind + 1; i < argc; i++)
        add_record(&r, argv[i], strlen(argv[i]), o.key);
    if (optind + 1 == argc && records_from_stdin(&r, o.key) < 0 && !cmd_interrupted())
        goto out;
    if (cmd_interrupted()) { /* Ctrl-C before anything was written: append nothing */
        rc = CMD_EXIT_INTERRUPTED;
        goto out;
    }
    if (r.n == 0) {
        cmd_error("nothing to append: give VALUE arguments or lines on standard input");
        goto out;
    }
    if ((batch = encode_records(&r, &size)) == NULL)
        goto out;
    if (cmd_store_open(o.data_dir, false, o.verbose, &st) < 0)
        goto out;
    if (append_batch(st, o.data_dir, name, batch, size) == 0)
        rc = CMD_EXIT_OK;
    store_close(st, NULL, NULL);
    if (finish_stdout() < 0)
        rc = CMD_EXIT_FAIL;
out:
    free(batch);
    free(r.recs);
    free(r.input);
    return rc;
}

/* ---- dump ---------------------------------------------------------------------------------- */

static void print_field(const char *k, const uint8_t *s, int64_t len)
{
    fputs(k, stdout);
    if (s)
        cmd_print_escaped(stdout, s, (size_t)len);
    else
        fputs("null", stdout);
}

static void print_headers(const struct batch_record *rec)
{
    const uint8_t *p = rec->headers, *end = rec->headers + rec->headers_len;
    for (int32_t i = 0; i < rec->header_count; i++) {
        struct batch_header hd;
        if (batch_header_next(&p, end, &hd) < 0) {
            fputs(" headers=malformed", stdout);
            return;
        }
        fputs(" header.", stdout);
        print_field("", hd.key, hd.key_len);
        print_field("=", hd.value, hd.value_len);
    }
}

static void print_record(const struct batch_record *rec)
{
    printf("offset=%" PRId64 " timestamp=%" PRId64, rec->offset, rec->timestamp);
    print_field(" key=", rec->key, rec->key_len);
    print_field(" value=", rec->value, rec->value_len);
    print_headers(rec);
    fputc('\n', stdout);
}

/* Dump progress: records below `from` are skipped, at most `left` (-1: all) printed. */
struct dump {
    const char *name;
    int64_t from;
    int64_t left;
};

/* Prints the records of one whole batch. Returns 0 or -1 (reported). */
static int dump_batch(struct dump *d, const uint8_t *b, const struct batch_hdr *h)
{
    if (batch_check_crc(b, h) < 0) {
        cmd_error("log %s: batch at offset %" PRId64 " fails its CRC check (corrupt)", d->name,
                  h->base_offset);
        return -1;
    }
    struct batch_iter it;
    if (batch_iter_init(&it, b, h) < 0) {
        if (batch_last_offset(h) >= d->from)
            printf("offset=%" PRId64 "..%" PRId64 " compressed batch (codec %d): not shown\n",
                   h->base_offset, batch_last_offset(h),
                   h->attributes & BATCH_ATTR_COMPRESSION_MASK);
        return 0;
    }
    struct batch_record rec;
    int rc = 0;
    while (d->left != 0 && (rc = batch_iter_next(&it, &rec)) == 1) {
        if (rec.offset < d->from)
            continue;
        print_record(&rec);
        if (d->left > 0)
            d->left--;
    }
    if (d->left != 0 && rc < 0) {
        cmd_error("log %s: malformed record in batch at offset %" PRId64, d->name, h->base_offset);
        return -1;
    }
    return 0;
}

/* Prints the records of the whole batches in buf (len bytes, read from one slice). */
static int dump_buffer(struct dump *d, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len && d->left != 0) {
        struct batch_hdr h;
        int64_t size = batch_parse(buf + pos, len - pos, len - pos, &h);
        if (size <= 0) {
            cmd_error("log %s: malformed batch in the segment file (%s)", d->name,
                      tern_strerror(size < 0 ? (int)size : TERN_EPROTO));
            return -1;
        }
        if (dump_batch(d, buf + pos, &h) < 0)
            return -1;
        pos += (size_t)size;
    }
    return 0;
}

/* Reads one slice from offset *off and prints it; advances *off. Returns 1 at the end, 0 to
 * go on, -1 on error (reported). */
static int dump_slice(struct log *log, struct dump *d, int64_t *off, int64_t end)
{
    struct log_slice s;
    int rc = log_read(log, *off, DUMP_READ_BYTES, end, &s);
    if (rc < 0) {
        cmd_error("log %s: cannot read offset %" PRId64 ": %s", d->name, *off, tern_strerror(rc));
        return -1;
    }
    if (s.len == 0) {
        log_slice_release(&s);
        return 1;
    }
    uint8_t *buf = tern_xmalloc(s.len);
    int n = log_slice_read(&s, buf);
    if (n < 0) {
        cmd_error("log %s: cannot read its segment file: %s", d->name,
                  n != TERN_ECORRUPT ? tern_strerror(n) : "file shorter than its index says");
        rc = -1;
    } else if (s.next_offset <= *off) {
        cmd_error("log %s: no progress reading at offset %" PRId64, d->name, *off);
        rc = -1;
    } else {
        rc = dump_buffer(d, buf, s.len);
        *off = s.next_offset;
    }
    free(buf);
    log_slice_release(&s);
    return rc;
}

static int dump_log(struct log *log, const char *name, const struct opts *o)
{
    int64_t start = log_start_offset(log), end = log_end_offset(log);
    if (o->from > end) {
        cmd_error("--from %" PRId64 " is beyond the end of log %s (end offset %" PRId64 ")",
                  o->from, name, end);
        return -1;
    }
    struct dump d = {.name = name, .from = o->from > start ? o->from : start, .left = o->max};
    int64_t off = d.from;
    int rc = 0;
    while (rc == 0 && off < end && d.left != 0 && !cmd_interrupted() && !stdout_failed())
        rc = dump_slice(log, &d, &off, end);
    return rc < 0 ? -1 : 0;
}

static int run_dump(int argc, char **argv)
{
    struct opts o;
    int rc = parse_options(argc, argv, "dump", "dfnvh", dump_usage, &o);
    if (rc >= 0)
        return rc;
    if ((rc = check_operands(argc, argv, "dump", 1, 1)) >= 0)
        return rc;
    const char *name = argv[optind];
    struct store *st;
    if (cmd_store_open(o.data_dir, true, o.verbose, &st) < 0)
        return CMD_EXIT_FAIL;
    rc = CMD_EXIT_FAIL;
    struct log *log = find_log(st, o.data_dir, name);
    if (log && dump_log(log, name, &o) == 0)
        rc = CMD_EXIT_OK;
    store_close(st, NULL, NULL);
    if (finish_stdout() < 0)
        rc = CMD_EXIT_FAIL;
    if (cmd_interrupted())
        rc = CMD_EXIT_INTERRUPTED;
    return rc;
}

/* ---- delete -------------------------------------------------------------------------------- */

static int run_delete(int argc, char **argv)
{
    struct opts o;
    int rc = parse_options(argc, argv, "delete", "dvh", delete_usage, &o);
    if (rc >= 0)
        return rc;
    if ((rc = check_operands(argc, argv, "delete", 1, 1)) >= 0)
        return rc;
    const char *name = argv[optind];
    struct store *st;
    if (cmd_store_open(o.data_dir, true, o.verbose, &st) < 0)
        return CMD_EXIT_FAIL;
    const char *reason = store_log_find(st, name) ? NULL : refused_reason(st, name);
    rc = CMD_EXIT_FAIL;
    if (!store_log_find(st, name) && !reason) {
        cmd_error("no log named %s in %s", name, o.data_dir);
    } else if ((rc = store_log_delete(st, name)) < 0) {
        if (reason)
            cmd_error("cannot delete log %s, refused at open (%s): %s", name, reason,
                      tern_strerror(rc));
        else
            cmd_error("cannot delete log %s: %s", name, tern_strerror(rc));
        rc = CMD_EXIT_FAIL;
    } else {
        printf("deleted log %s\n", name);
        rc = CMD_EXIT_OK;
    }
    store_close(st, NULL, NULL);
    if (finish_stdout() < 0)
        rc = CMD_EXIT_FAIL;
    return rc;
}

/* ---- dispatch ------------------------------------------------------------------------------ */

static const struct cmd log_cmds[] = {
    {"list", run_list},
    {"append", run_append},
    {"dump", run_dump},
    {"delete", run_delete},
};

int cmd_log_main(int argc, char **argv)
{
    if (argc < 2)
        return cmd_usage_error("log", "log: missing command (list, append, dump or delete)");
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0 || strcmp(sub, "help") == 0) {
        fputs(log_usage, stdout);
        return CMD_EXIT_OK;
    }
    for (size_t i = 0; i < TERN_ARRAY_LEN(log_cmds); i++) {
        if (strcmp(sub, log_cmds[i].name) == 0)
            return log_cmds[i].run(argc - 1, argv + 1);
    }
    return cmd_usage_error("log", "unknown command 'log %s'", sub);
}
