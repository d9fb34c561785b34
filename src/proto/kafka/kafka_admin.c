/*
 * kafka_admin.c - Metadata and the admin APIs: CreateTopics, DeleteTopics, CreatePartitions,
 * DescribeConfigs, AlterConfigs. One node: it is the controller, and the leader and only
 * replica of every partition.
 */
#include <inttypes.h>
#include <string.h>

#include "base/tern.h"
#include "broker/group.h"
#include "broker/stream.h"
#include "proto/kafka/kafka_int.h"

#define RESOURCE_TOPIC 2
#define RESOURCE_BROKER 4
#define CONFIG_SOURCE_TOPIC 1
#define CONFIG_SOURCE_DEFAULT 5

static struct kafka_str str_of(const char *s)
{
    return kafka_str_c(s);
}

/* ---- Metadata ------------------------------------------------------------------------------ */

static void part_meta(struct kafka_req *r, struct kafka_metadata_response_partition *p,
                      int32_t index)
{
    int32_t *node = kafka_alloc(r, 1, sizeof(*node));
    *node = r->c->srv->cfg.node_id;
    *p = (struct kafka_metadata_response_partition){
        .partition_index = index,
        .leader_id = *node,
        .leader_epoch = 0,
        .replica_nodes = {1, node},
        .isr_nodes = {1, node},
    };
}

static void topic_meta(struct kafka_req *r, struct kafka_metadata_response_topic *out,
                       struct stream_topic *t)
{
    int32_t n = stream_partitions(t);
    struct kafka_metadata_response_partition *ps = kafka_alloc(r, (size_t)n, sizeof(*ps));
    for (int32_t i = 0; i < n; i++)
        part_meta(r, &ps[i], i);
    *out = (struct kafka_metadata_response_topic){
        .name = str_of(stream_topic_name(t)),
        .partitions = {n, ps},
        .topic_authorized_operations = INT32_MIN,
    };
}

struct stream_topic *kafka_topic_or_create(struct kafka_req *r, struct kafka_str name,
                                           bool allow_create, int16_t *error)
{
    struct stream_mgr *m = r->c->srv->streams;
    size_t len = name.len > 0 ? (size_t)name.len : 0;
    struct stream_topic *t = stream_find(m, (const char *)name.p, len);
    *error = KERR_NONE;
    if (t)
        return t;
    if (!allow_create || !stream_mgr_defaults(m)->auto_create) {
        *error = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        return NULL;
    }
    struct stream_err err;
    if (stream_create(m, kafka_cstr(r, name), -1, NULL, 0, false, &t, &err) < 0) {
        *error = kafka_stream_error(&err);
        return NULL;
    }
    return t;
}

void kafka_handle_metadata(struct kafka_req *r, const struct kafka_metadata_request *m)
{
    struct kafka_server *s = r->c->srv;
    struct kafka_metadata_response_broker *b = kafka_alloc(r, 1, sizeof(*b));
    *b = (struct kafka_metadata_response_broker){s->cfg.node_id, str_of(s->advertised_host),
                                                 s->cfg.advertised_port, KAFKA_STR_NULL};
    struct kafka_metadata_response resp = {
        .brokers = {1, b},
        .cluster_id = str_of(s->cluster_id),
        .controller_id = s->cfg.node_id,
        .cluster_authorized_operations = INT32_MIN,
    };
    /* all topics: null (v1+) or, in v0, an empty list */
    bool all = m->topics.n < 0 || (r->version == 0 && m->topics.n == 0);
    if (all) {
        size_t n = stream_count(s->streams);
        struct kafka_metadata_response_topic *ts = kafka_alloc(r, n, sizeof(*ts));
        for (size_t i = 0; i < n; i++)
            topic_meta(r, &ts[i], stream_at(s->streams, i));
        resp.topics.n = (int32_t)n;
        resp.topics.v = ts;
    } else {
        int32_t n = m->topics.n;
        struct kafka_metadata_response_topic *ts = kafka_alloc(r, (size_t)n, sizeof(*ts));
        bool create = r->version < 4 || m->allow_auto_topic_creation;
        for (int32_t i = 0; i < n; i++) {
            int16_t error;
            struct stream_topic *t = kafka_topic_or_create(r, m->topics.v[i].name, create, &error);
            if (t) {
                topic_meta(r, &ts[i], t);
            } else {
                ts[i] = (struct kafka_metadata_response_topic){
                    .error_code = error,
                    .name = m->topics.v[i].name,
                    .topic_authorized_operations = INT32_MIN,
                };
            }
        }
        resp.topics.n = n;
        resp.topics.v = ts;
    }
    kafka_reply(r->slot, &resp);
}

/* ---- CreateTopics, DeleteTopics, CreatePartitions ----------------------------------------- */

static void create_one(struct kafka_req *r, const struct kafka_create_topics_request_topic *in,
                       bool validate_only, struct kafka_create_topics_response_topic *out)
{
    *out = (struct kafka_create_topics_response_topic){.name = in->name,
                                                       .error_message = KAFKA_STR_NULL};
    if (in->replication_factor != -1 && in->replication_factor != 1) {
        out->error_code = KERR_INVALID_REPLICATION_FACTOR;
        out->error_message = str_of("Replication factor must be 1 (or -1): tern is one node.");
        return;
    }
    if (in->assignments.n > 0) {
        out->error_code = KERR_INVALID_REQUEST;
        out->error_message = str_of("Manual partition assignment is not supported.");
        return;
    }
    int32_t nc = in->configs.n > 0 ? in->configs.n : 0;
    struct stream_kv *kv = kafka_alloc(r, (size_t)nc, sizeof(*kv));
    for (int32_t i = 0; i < nc; i++) {
        kv[i].name = kafka_cstr(r, in->configs.v[i].name);
        kv[i].value = in->configs.v[i].value.len < 0 ? NULL : kafka_cstr(r, in->configs.v[i].value);
    }
    struct stream_err err;
    if (stream_create(r->c->srv->streams, kafka_cstr(r, in->name), in->num_partitions, kv,
                      (size_t)nc, validate_only, NULL, &err) < 0) {
        out->error_code = kafka_stream_error(&err);
        out->error_message = kafka_str_dup(r, err.text);
    }
}

void kafka_handle_create_topics(struct kafka_req *r, const struct kafka_create_topics_request *m)
{
    int32_t n = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_create_topics_response_topic *ts = kafka_alloc(r, (size_t)n, sizeof(*ts));
    for (int32_t i = 0; i < n; i++)
        create_one(r, &m->topics.v[i], m->validate_only, &ts[i]);
    struct kafka_create_topics_response resp = {.topics = {n, ts}};
    kafka_reply(r->slot, &resp);
}

void kafka_handle_delete_topics(struct kafka_req *r, const struct kafka_delete_topics_request *m)
{
    int32_t n = m->topic_names.n > 0 ? m->topic_names.n : 0;
    struct kafka_delete_topics_response_result *rs = kafka_alloc(r, (size_t)n, sizeof(*rs));
    for (int32_t i = 0; i < n; i++) {
        struct stream_err err;
        rs[i].name = m->topic_names.v[i];
        const char *name = kafka_cstr(r, m->topic_names.v[i]);
        if (stream_delete(r->c->srv->streams, name, &err) < 0)
            rs[i].error_code = kafka_stream_error(&err);
        else
            group_forget_topic(r->c->srv->groups, name);
    }
    struct kafka_delete_topics_response resp = {.responses = {n, rs}};
    kafka_reply(r->slot, &resp);
}

void kafka_handle_create_partitions(struct kafka_req *r,
                                    const struct kafka_create_partitions_request *m)
{
    int32_t n = m->topics.n > 0 ? m->topics.n : 0;
    struct kafka_create_partitions_response_result *rs = kafka_alloc(r, (size_t)n, sizeof(*rs));
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_create_partitions_request_topic *t = &m->topics.v[i];
        struct stream_err err;
        rs[i] = (struct kafka_create_partitions_response_result){.name = t->name,
                                                                 .error_message = KAFKA_STR_NULL};
        if (stream_add_partitions(r->c->srv->streams, kafka_cstr(r, t->name), t->count,
                                  m->validate_only, &err) < 0) {
            rs[i].error_code = kafka_stream_error(&err);
            rs[i].error_message = kafka_str_dup(r, err.text);
        }
    }
    struct kafka_create_partitions_response resp = {.results = {n, rs}};
    kafka_reply(r->slot, &resp);
}

/* ---- DescribeConfigs, AlterConfigs --------------------------------------------------------- */

static bool key_wanted(const struct kafka_describe_configs_request_resource *res, const char *name)
{
    if (res->configuration_keys.n < 0)
        return true;
    for (int32_t i = 0; i < res->configuration_keys.n; i++) {
        struct kafka_str k = res->configuration_keys.v[i];
        if ((size_t)k.len == strlen(name) && memcmp(k.p, name, (size_t)k.len) == 0)
            return true;
    }
    return false;
}

static void describe_topic(struct kafka_req *r,
                           const struct kafka_describe_configs_request_resource *res,
                           struct kafka_describe_configs_response_result *out)
{
    struct stream_topic *t = stream_find(r->c->srv->streams, (const char *)res->resource_name.p,
                                         (size_t)res->resource_name.len);
    if (!t) {
        out->error_code = KERR_UNKNOWN_TOPIC_OR_PARTITION;
        out->error_message = str_of("This server does not host this topic-partition.");
        return;
    }
    struct stream_config_desc d;
    size_t total = 0;
    while (stream_config_at(t, total, &d))
        total++;
    struct kafka_describe_configs_response_config *cs = kafka_alloc(r, total, sizeof(*cs));
    int32_t n = 0;
    for (size_t i = 0; stream_config_at(t, i, &d); i++) {
        if (!key_wanted(res, d.name))
            continue;
        cs[n++] = (struct kafka_describe_configs_response_config){
            .name = str_of(d.name),
            .value = kafka_str_dup(r, d.value),
            .read_only = d.read_only,
            .config_source = d.is_default ? CONFIG_SOURCE_DEFAULT : CONFIG_SOURCE_TOPIC,
        };
    }
    out->configs.n = n;
    out->configs.v = cs;
}

void kafka_handle_describe_configs(struct kafka_req *r,
                                   const struct kafka_describe_configs_request *m)
{
    int32_t n = m->resources.n > 0 ? m->resources.n : 0;
    struct kafka_describe_configs_response_result *rs = kafka_alloc(r, (size_t)n, sizeof(*rs));
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_describe_configs_request_resource *res = &m->resources.v[i];
        rs[i] = (struct kafka_describe_configs_response_result){
            .error_message = KAFKA_STR_NULL,
            .resource_type = res->resource_type,
            .resource_name = res->resource_name,
        };
        if (res->resource_type == RESOURCE_TOPIC)
            describe_topic(r, res, &rs[i]);
        else if (res->resource_type != RESOURCE_BROKER)
            rs[i].error_code = KERR_INVALID_REQUEST;
        /* a broker resource: tern exposes no broker configs through Kafka (empty list) */
    }
    struct kafka_describe_configs_response resp = {.results = {n, rs}};
    kafka_reply(r->slot, &resp);
}

void kafka_handle_alter_configs(struct kafka_req *r, const struct kafka_alter_configs_request *m)
{
    int32_t n = m->resources.n > 0 ? m->resources.n : 0;
    struct kafka_alter_configs_response_resource *rs = kafka_alloc(r, (size_t)n, sizeof(*rs));
    for (int32_t i = 0; i < n; i++) {
        const struct kafka_alter_configs_request_resource *res = &m->resources.v[i];
        rs[i] = (struct kafka_alter_configs_response_resource){
            .error_message = KAFKA_STR_NULL,
            .resource_type = res->resource_type,
            .resource_name = res->resource_name,
        };
        if (res->resource_type != RESOURCE_TOPIC) {
            rs[i].error_code = KERR_INVALID_REQUEST;
            rs[i].error_message = str_of("Only topic configs can be altered.");
            continue;
        }
        int32_t nc = res->configs.n > 0 ? res->configs.n : 0;
        struct stream_kv *kv = kafka_alloc(r, (size_t)nc, sizeof(*kv));
        for (int32_t k = 0; k < nc; k++) {
            kv[k].name = kafka_cstr(r, res->configs.v[k].name);
            kv[k].value =
                res->configs.v[k].value.len < 0 ? NULL : kafka_cstr(r, res->configs.v[k].value);
        }
        struct stream_err err;
        if (stream_set_configs(r->c->srv->streams, kafka_cstr(r, res->resource_name), kv,
                               (size_t)nc, m->validate_only, &err) < 0) {
            rs[i].error_code = kafka_stream_error(&err);
            rs[i].error_message = kafka_str_dup(r, err.text);
        }
    }
    struct kafka_alter_configs_response resp = {.responses = {n, rs}};
    kafka_reply(r->slot, &resp);
}
