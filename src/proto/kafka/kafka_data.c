/*
 * kafka_data.c - the data path: Produce, Fetch (with long poll), ListOffsets, DeleteRecords,
 * OffsetForLeaderEpoch, InitProducerId.
 *
 * Produce: batches are appended as received (broker/stream.h). acks=1 is answered after the
 * append (the page cache: safe from a process crash); acks=-1 only once an fsync covers every
 * partition's batch (log_wait_durable); acks=0 gets no response. If that fsync fails the log
 * turns read-only and the connection is closed without a response, so the producer retries
 * (and its retry fails with KAFKA_STORAGE_ERROR) rather than believing the data is safe.
 *
 * Fetch: the high watermark is the log end (one node, no replicas to wait for). Records are
 * the segment bytes of whole batches, sent as they are from the segment files (net_conn_write_file:
 * never held in memory; the encoded response leaves gaps for them: kafka_reply_files); the first
 * batch is sent even when it is larger than the size limits, as Kafka does (KIP-74). A fetch that
 * finds fewer than min_bytes waits up to max_wait_ms, woken by appends to its partitions.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/tern.h"
#include "base/tlog.h"
#include "broker/catalog.h"
#include "broker/stream.h"
#include "proto/kafka/kafka_int.h"
#include "store/batch.h"

#define EARLIEST (-2)
#define LATEST (-1)

static int64_t log_start(struct stream_part *p)
{
    return log_start_offset(stream_part_log(p));
}
static int64_t log_end(struct stream_part *p)
{
    return log_end_offset(stream_part_log(p));
}

/* The topic a request names, or NULL: looked up once per topic, not per partition. */
static struct stream_topic *find_topic(struct kafka_req *r, struct kafka_str topic)
{
    return stream_find(r->c->srv->streams, (const char *)topic.p,
                       topic.len > 0 ? (size_t)topic.len : 0);
}

static struct stream_part *part_of(struct stream_topic *t, int32_t index)
{
    return t ? stream_part(t, index) : NULL;
}

/* ---- Produce ------------------------------------------------------------------------------- */

struct produce_wait {
    struct kafka_slot *slot; /* NULL once the connection went away */
    int remaining;
    int status;
};

static void produce_done(struct produce_wait *w)
{
    if (w->slot) {
        struct kafka_slot *s = w->slot;
        s->pending = NULL;
        if (w->status < 0) {
            TLOG_ERROR("kafka", "event=produce_not_durable error=\"%s\"", tern_strerror(w->status));
            s->noreply = true;
            kafka_conn_close(s->c, "fsync failed");
        }
        kafka_ready(s);
    }
    free(w);
}

static void on_produce_durable(void *arg, int status)
{
    struct produce_wait *w = arg;
    if (status < 0 && w->status == 0)
        w->status = status;
    if (--w->remaining == 0)
        produce_done(w);
}

static void produce_cancel(struct kafka_slot *s)
{
    struct produce_wait *w = s->pending;
    w->slot = NULL; /* the log still answers; the wait then only frees itself */
    s->pending = NULL;
}

static void produce_partition(struct stream_topic *t,
                              const struct kafka_produce_request_partition *in, int16_t acks,
                              struct produce_wait *w, struct kafka_produce_response_partition *out)
{
    *out = (struct kafka_produce_response_partition){
        .index = in->index, .base_offset = -1, .log_append_time_ms = -1, .log_start_offset = -1};
    struct stream_part *p = part_of(t, in->index);
    if (!p) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    if (in->records.len <= 0) {
        out->error_code = KERR_CORRUPT_MESSAGE;
        return;
    }
    struct stream_append_result res;
    struct stream_err err;
    /* the records live in the connection's input buffer, which tern owns: appended in place */
    if (stream_append(p, (uint8_t *)in->records.p, (size_t)in->records.len, clock_wall_ms(), &res,
                      &err) < 0) {
        out->error_code = kafka_stream_error(&err);
        return;
    }
    out->base_offset = res.base_offset;
    out->log_append_time_ms = res.log_append_time;
    out->log_start_offset = log_start(p);
    if (acks != -1)
        return;
    int rc = log_wait_durable(stream_part_log(p), res.last_offset + 1, on_produce_durable, w);
    if (rc == 0)
        w->remaining++;
    else if (rc < 0)
        out->error_code = KERR_KAFKA_STORAGE_ERROR;
}

void kafka_handle_produce(struct kafka_req *r, const struct kafka_produce_request *m)
{
    int16_t acks = m->acks;
    struct produce_wait *w = NULL; /* only acks=-1 waits for an fsync */
    if (acks == -1) {
        w = tern_xcalloc(1, sizeof(*w));
        w->remaining = 1; /* held until every partition is appended */
    }
    int32_t nt = m->topic_data.n > 0 ? m->topic_data.n : 0;
    struct kafka_produce_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    bool bad_acks = acks != 0 && acks != 1 && acks != -1;
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_produce_request_topic *in = &m->topic_data.v[i];
        int32_t np = in->partition_data.n > 0 ? in->partition_data.n : 0;
        struct kafka_produce_response_partition *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
        int16_t terr = KERR_NONE;
        struct stream_topic *t = NULL;
        if (!bad_acks && m->transactional_id.len < 0)
            t = kafka_topic_or_create(r, in->name, true, &terr);
        for (int32_t k = 0; k < np; k++) {
            produce_partition(t, &in->partition_data.v[k], acks, w, &ps[k]);
            if (bad_acks)
                ps[k].error_code = KERR_INVALID_REQUIRED_ACKS;
            else if (m->transactional_id.len >= 0)
                ps[k].error_code = KERR_INVALID_REQUEST; /* transactions are not supported */
            else if (terr && ps[k].error_code == KERR_UNKNOWN_TOPIC_OR_PARTITION)
                ps[k].error_code = terr;
        }
        ts[i] = (struct kafka_produce_response_topic){in->name, {np, ps}};
    }
    struct kafka_produce_response resp = {.responses = {nt, ts}};
    if (acks == 0) {
        kafka_reply_none(r->slot);
    } else if (kafka_encode(r->slot, &resp) < 0) {
        /* the slot is done and the connection closing (kafka_encode) */
    } else if (w && w->remaining > 1) {
        w->slot = r->slot; /* answered when the last fsync is */
        r->slot->pending = w;
        r->slot->cancel = produce_cancel;
    } else {
        kafka_ready(r->slot);
    }
    if (w)
        on_produce_durable(w, 0); /* drops the hold; frees w when nothing else waits */
}

/* ---- Fetch --------------------------------------------------------------------------------- */

/* The slice of whole batches of p from offset: at most max bytes, but at least one batch
 * (KIP-74) when first is set. Returns 0 (s->len 0: nothing) or a negative error. */
static int records_slice(struct stream_part *p, int64_t offset, size_t max, bool first,
                         struct log_slice *s)
{
    struct log *log = stream_part_log(p);
    int rc = log_read(log, offset, max, log_end_offset(log), s);
    if (rc == 0 && s->len == 0 && first && offset < log_end_offset(log)) {
        log_slice_release(s);
        rc = log_read(log, offset, log_get_config(log)->max_batch_bytes, log_end_offset(log), s);
    }
    return rc;
}

/* The record slices of a fetch response go in f->slice in response order, a partition's
 * adjacent: its records field becomes a gap (kafka_wire.h) they fill, so they go out from the
 * segment files (net_conn_write_file), not through memory. */
#define FETCH_PART_SLICES 16 /* segments one partition may read on into */

/* Appends the slices of one partition from offset to f: the first as log_read cuts it
 * (KIP-74), then on into the following segments while they fit in max. A compacted segment
 * may hold nothing but empty batches, and librdkafka takes a fetch that yields no record for
 * "message too large" once it has doubled its fetch size ten times. Returns 0 or an error;
 * *added is the bytes appended either way. */
static int add_slices(struct stream_part *p, int64_t offset, size_t max, bool first,
                      struct kafka_files *f, size_t *added)
{
    int64_t end = log_end(p);
    size_t len = 0;
    int rc = 0;
    for (int k = 0; k < FETCH_PART_SLICES && f->n < KAFKA_FILES_MAX && offset < end; k++) {
        struct log_slice *s = &f->slice[f->n];
        rc = k == 0 ? records_slice(p, offset, max, first, s)
                    : log_read(stream_part_log(p), offset, max - len, end, s);
        if (rc < 0)
            break;
        if (s->len == 0 || (k > 0 && len + s->len > max)) {
            log_slice_release(s);
            break;
        }
        f->n++;
        len += s->len;
        offset = s->next_offset;
        if (len >= max)
            break;
    }
    *added = len;
    return rc < 0 ? rc : 0;
}

static void fetch_partition(struct stream_topic *t, const struct kafka_fetch_request_partition *in,
                            size_t *budget, bool *first, size_t *total, struct kafka_files *files,
                            struct kafka_fetch_response_partition *out)
{
    *out = (struct kafka_fetch_response_partition){
        .partition_index = in->partition,
        .high_watermark = -1,
        .last_stable_offset = -1,
        .log_start_offset = -1,
        .aborted_transactions = {-1, NULL},
        .preferred_read_replica = -1,
        .records = {(const uint8_t *)"", 0},
    };
    struct stream_part *p = part_of(t, in->partition);
    if (!p) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return;
    }
    int64_t start = log_start(p), end = log_end(p);
    out->high_watermark = out->last_stable_offset = end;
    out->log_start_offset = start;
    if (in->fetch_offset < start || in->fetch_offset > end) {
        out->error_code = KERR_OFFSET_OUT_OF_RANGE;
        return;
    }
    if (in->fetch_offset == end || (*budget == 0 && !*first) || files->n == KAFKA_FILES_MAX)
        return; /* no room left in this response: the rest in the next fetch */
    size_t max = in->partition_max_bytes > 0 ? (size_t)in->partition_max_bytes : 0;
    if (max > *budget)
        max = *budget;
    size_t got;
    int rc = add_slices(p, in->fetch_offset, max, *first, files, &got);
    if (got > 0) /* the gap its slices fill */
        out->records = (struct kafka_str){kafka_wire_gap, (int32_t)got};
    if (rc < 0) {
        out->error_code = KERR_KAFKA_STORAGE_ERROR;
        return;
    }
    *budget = got >= *budget ? 0 : *budget - got;
    *total += got;
    if (got > 0)
        *first = false;
}

/* Builds the whole fetch response; returns the record bytes it holds. Partitions with records
 * point at gaps that *files fills (NULL when there are none): send it with kafka_reply_files. */
static size_t fetch_build(struct kafka_req *r, const struct kafka_fetch_request *m,
                          struct kafka_fetch_response *resp, struct kafka_files **files)
{
    *resp = (struct kafka_fetch_response){0};
    int32_t nt = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_fetch_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    size_t budget = m->max_bytes > 0 ? (size_t)m->max_bytes : 0, total = 0;
    bool first = true;
    struct kafka_files *f = kafka_files_new();
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_fetch_request_topic *in = &m->topics.v[i];
        int32_t np = in->partitions.n > 0 ? in->partitions.n : 0;
        struct kafka_fetch_response_partition *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
        struct stream_topic *t = find_topic(r, in->topic);
        for (int32_t k = 0; k < np; k++)
            fetch_partition(t, &in->partitions.v[k], &budget, &first, &total, f, &ps[k]);
        ts[i] = (struct kafka_fetch_response_topic){in->topic, {np, ps}};
    }
    resp->responses.n = nt;
    resp->responses.v = ts;
    *files = f;
    if (f->n == 0) {
        kafka_files_unref(f);
        *files = NULL;
    }
    return total;
}

/* A fetch waiting for data: its request body (copied) and the request decoded from it once,
 * a timer and a watch per partition. */
struct fetch_wait {
    struct kafka_slot *slot; /* NULL once cancelled */
    struct kafka_conn *c;
    int16_t version;
    uint8_t *body;
    size_t len;
    struct arena arena; /* req's arrays (its strings point into body) */
    struct kafka_fetch_request req;
    struct arena rarena; /* the response of one wake (reset after each) */
    uv_timer_t timer;
    uint64_t deadline_ms;
    int32_t min_bytes;
    struct stream_watch *watches;
    size_t nwatches;
    bool woken;
};

static void fetch_wait_closed(uv_handle_t *h)
{
    struct fetch_wait *w = h->data;
    arena_fini(&w->arena);
    arena_fini(&w->rarena);
    free(w->body);
    free(w->watches);
    free(w);
}

static void fetch_wait_end(struct fetch_wait *w)
{
    for (size_t i = 0; i < w->nwatches; i++)
        stream_unwatch(&w->watches[i]);
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, fetch_wait_closed);
}

static void fetch_cancel(struct kafka_slot *s)
{
    struct fetch_wait *w = s->pending;
    s->pending = NULL;
    w->slot = NULL;
    fetch_wait_end(w);
}

static void on_fetch_timer(uv_timer_t *t)
{
    struct fetch_wait *w = t->data;
    struct kafka_slot *s = w->slot;
    if (!s)
        return;
    struct kafka_req r = {w->c, s, &w->rarena, KAFKA_API_FETCH, w->version, w->body, w->len};
    struct kafka_fetch_response resp;
    struct kafka_files *files;
    size_t total = fetch_build(&r, &w->req, &resp, &files);
    bool expired = uv_now(t->loop) >= w->deadline_ms;
    if (total >= (size_t)w->min_bytes || expired) {
        s->pending = NULL;
        w->slot = NULL;
        kafka_reply_files(s, &resp, files);
        fetch_wait_end(w);
    } else {
        kafka_files_unref(files);
        w->woken = false;
        uv_timer_start(&w->timer, on_fetch_timer, w->deadline_ms - uv_now(t->loop), 0);
    }
    arena_reset(&w->rarena);
}

static void on_fetch_append(void *arg, struct stream_part *p)
{
    struct fetch_wait *w = arg;
    (void)p;
    if (w->woken || !w->slot)
        return;
    w->woken = true; /* answer from the loop, not from inside the appender's call */
    uv_timer_start(&w->timer, on_fetch_timer, 0, 0);
}

static void fetch_park(struct kafka_req *r, const struct kafka_fetch_request *m)
{
    struct fetch_wait *w = tern_xcalloc(1, sizeof(*w));
    w->slot = r->slot;
    w->c = r->c;
    w->version = r->version;
    w->body = tern_xmalloc(r->len ? r->len : 1);
    memcpy(w->body, r->body, r->len);
    w->len = r->len;
    /* m points into the connection's buffers, gone after this call: decode the copy once */
    arena_init(&w->arena, SIZE_MAX);
    arena_init(&w->rarena, SIZE_MAX);
    int rc = kafka_fetch_request_decode(w->body, w->len, w->version, &w->arena, &w->req);
    TERN_ASSERT(rc == 0); /* it decoded the first time */
    w->min_bytes = m->min_bytes;
    uv_timer_init(r->c->srv->loop, &w->timer);
    w->timer.data = w;
    w->deadline_ms = uv_now(r->c->srv->loop) + (uint64_t)m->max_wait_ms;
    size_t n = 0;
    for (int32_t i = 0; i < m->topics.n; i++)
        n += m->topics.v[i].partitions.n > 0 ? (size_t)m->topics.v[i].partitions.n : 0;
    w->watches = tern_xcalloc(n ? n : 1, sizeof(*w->watches));
    for (int32_t i = 0; i < m->topics.n; i++) {
        const struct kafka_fetch_request_topic *in = &m->topics.v[i];
        struct stream_topic *t = find_topic(r, in->topic);
        for (int32_t k = 0; k < in->partitions.n; k++) {
            struct stream_part *p = part_of(t, in->partitions.v[k].partition);
            if (!p)
                continue;
            struct stream_watch *sw = &w->watches[w->nwatches++];
            sw->cb = on_fetch_append;
            sw->arg = w;
            stream_watch(p, sw);
        }
    }
    r->slot->pending = w;
    r->slot->cancel = fetch_cancel;
    uv_timer_start(&w->timer, on_fetch_timer, (uint64_t)m->max_wait_ms, 0);
}

void kafka_handle_fetch(struct kafka_req *r, const struct kafka_fetch_request *m)
{
    struct kafka_fetch_response resp;
    struct kafka_files *files;
    size_t total = fetch_build(r, m, &resp, &files);
    if (total >= (size_t)(m->min_bytes > 0 ? m->min_bytes : 0) || m->max_wait_ms <= 0) {
        kafka_reply_files(r->slot, &resp, files);
        return;
    }
    kafka_files_unref(files);
    fetch_park(r, m);
}

/* ---- ListOffsets, DeleteRecords, OffsetForLeaderEpoch -------------------------------------- */

/* The timestamp of the record at offset (its batch's, for a compressed batch), or -1. */
static int64_t record_time(struct kafka_req *r, struct stream_part *p, int64_t offset)
{
    struct log_slice s;
    if (records_slice(p, offset, 1, true, &s) < 0)
        return -1;
    struct kafka_str rec = {(const uint8_t *)"", 0};
    if (s.len > 0) {
        uint8_t *dst = kafka_alloc(r, s.len, 1);
        if (log_slice_read(&s, dst) == 0)
            rec = (struct kafka_str){dst, (int32_t)s.len};
    }
    log_slice_release(&s);
    struct batch_hdr h;
    if (rec.len <= 0 || batch_parse(rec.p, (size_t)rec.len, SIZE_MAX, &h) <= 0)
        return -1;
    if ((h.attributes & BATCH_ATTR_COMPRESSION_MASK) || (h.attributes & BATCH_ATTR_LOG_APPEND_TIME))
        return h.attributes & BATCH_ATTR_LOG_APPEND_TIME ? h.max_timestamp : h.first_timestamp;
    struct batch_iter it;
    struct batch_record br;
    if (batch_iter_init(&it, rec.p, &h) < 0)
        return -1;
    while (batch_iter_next(&it, &br) == 1)
        if (br.offset == offset)
            return br.timestamp;
    return h.first_timestamp;
}

static void list_offset(struct kafka_req *r, struct stream_topic *t,
                        const struct kafka_list_offsets_request_partition *in,
                        struct kafka_list_offsets_response_partition *out)
{
    *out = (struct kafka_list_offsets_response_partition){
        .partition_index = in->partition_index, .timestamp = -1, .offset = -1, .leader_epoch = 0};
    struct stream_part *p = part_of(t, in->partition_index);
    if (!p) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        out->leader_epoch = -1;
        return;
    }
    if (in->timestamp == EARLIEST) {
        out->offset = log_start(p);
    } else if (in->timestamp == LATEST) {
        out->offset = log_end(p);
    } else {
        int64_t off;
        if (log_find_time(stream_part_log(p), in->timestamp, &off) == 0) {
            out->offset = off;
            out->timestamp = record_time(r, p, off);
        }
    }
}

void kafka_handle_list_offsets(struct kafka_req *r, const struct kafka_list_offsets_request *m)
{
    int32_t nt = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_list_offsets_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_list_offsets_request_topic *in = &m->topics.v[i];
        int32_t np = in->partitions.n > 0 ? in->partitions.n : 0;
        struct kafka_list_offsets_response_partition *ps = kafka_alloc(r, (size_t)np, sizeof(*ps));
        struct stream_topic *t = find_topic(r, in->name);
        for (int32_t k = 0; k < np; k++)
            list_offset(r, t, &in->partitions.v[k], &ps[k]);
        ts[i] = (struct kafka_list_offsets_response_topic){in->name, {np, ps}};
    }
    struct kafka_list_offsets_response resp = {.topics = {nt, ts}};
    kafka_reply(r->slot, &resp);
}

void kafka_handle_delete_records(struct kafka_req *r, const struct kafka_delete_records_request *m)
{
    int32_t nt = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_delete_records_response_topic *ts = kafka_alloc(r, (size_t)nt, sizeof(*ts));
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_delete_records_request_topic *in = &m->topics.v[i];
        int32_t np = in->partitions.n > 0 ? in->partitions.n : 0;
        struct kafka_delete_records_response_partition *ps =
            kafka_alloc(r, (size_t)np, sizeof(*ps));
        struct stream_topic *t = find_topic(r, in->name);
        for (int32_t k = 0; k < np; k++) {
            const struct kafka_delete_records_request_partition *pin = &in->partitions.v[k];
            struct stream_part *p = part_of(t, pin->partition_index);
            ps[k] = (struct kafka_delete_records_response_partition){pin->partition_index, -1, 0};
            if (!p) {
                ps[k].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            int64_t off = pin->offset == -1 ? log_end(p) : pin->offset;
            if (off < 0 || off > log_end(p)) {
                ps[k].error_code = KERR_OFFSET_OUT_OF_RANGE;
                continue;
            }
            if (log_delete_below(stream_part_log(p), off) < 0)
                ps[k].error_code = KERR_KAFKA_STORAGE_ERROR;
            ps[k].low_watermark = log_start(p);
        }
        ts[i] = (struct kafka_delete_records_response_topic){in->name, {np, ps}};
    }
    struct kafka_delete_records_response resp = {.topics = {nt, ts}};
    kafka_reply(r->slot, &resp);
}

void kafka_handle_offset_for_leader_epoch(struct kafka_req *r,
                                          const struct kafka_offset_for_leader_epoch_request *m)
{
    int32_t nt = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_offset_for_leader_epoch_response_topic *ts =
        kafka_alloc(r, (size_t)nt, sizeof(*ts));
    for (int32_t i = 0; i < nt; i++) {
        const struct kafka_offset_for_leader_epoch_request_topic *in = &m->topics.v[i];
        int32_t np = in->partitions.n > 0 ? in->partitions.n : 0;
        struct kafka_offset_for_leader_epoch_response_partition *ps =
            kafka_alloc(r, (size_t)np, sizeof(*ps));
        struct stream_topic *t = find_topic(r, in->topic);
        for (int32_t k = 0; k < np; k++) {
            struct stream_part *p = part_of(t, in->partitions.v[k].partition);
            ps[k] = (struct kafka_offset_for_leader_epoch_response_partition){
                .partition = in->partitions.v[k].partition, .leader_epoch = -1, .end_offset = -1};
            if (!p) {
                ps[k].error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
                continue;
            }
            /* every partition has had one leader, epoch 0, since offset 0 */
            ps[k].leader_epoch = 0;
            ps[k].end_offset = log_end(p);
        }
        ts[i] = (struct kafka_offset_for_leader_epoch_response_topic){in->topic, {np, ps}};
    }
    struct kafka_offset_for_leader_epoch_response resp = {.topics = {nt, ts}};
    kafka_reply(r->slot, &resp);
}

/* ---- InitProducerId ------------------------------------------------------------------------ */

void kafka_handle_init_producer_id(struct kafka_req *r,
                                   const struct kafka_init_producer_id_request *m)
{
    struct kafka_init_producer_id_response resp = {.producer_id = -1, .producer_epoch = -1};
    if (m->transactional_id.len >= 0) {
        resp.error_code = KERR_INVALID_REQUEST; /* transactions are not supported */
    } else if (m->producer_id >= 0 && m->producer_epoch >= 0 && m->producer_epoch < INT16_MAX) {
        /* KIP-360: an idempotent producer re-initialising bumps its epoch */
        resp.producer_id = m->producer_id;
        resp.producer_epoch = (int16_t)(m->producer_epoch + 1);
    } else {
        int64_t id;
        int rc = catalog_next_producer_id(r->c->srv->cat, &id);
        if (rc < 0) {
            resp.error_code = KERR_KAFKA_STORAGE_ERROR;
        } else {
            resp.producer_id = id;
            resp.producer_epoch = 0;
        }
    }
    kafka_reply(r->slot, &resp);
}
