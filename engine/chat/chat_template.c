/* Chat templates of a model directory: loading (chat_template.jinja, or tokenizer_config.json's
 * chat_template as a string or a list of named templates), the special token strings, and the
 * render context {messages, tools, add_generation_prompt, bos_token, eos_token}. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chat_template.h"
#include "error.h"
#include "jinja.h"

#define MAX_TEMPLATES 8

struct chat_template {
    char *names[MAX_TEMPLATES]; /* "default" for a single template */
    jinja_template *tpl[MAX_TEMPLATES];
    char *src[MAX_TEMPLATES];   /* their Jinja sources */
    int n;
    char *bos_token, *eos_token; /* NULL when the config has none */
    char *source;                /* the file the templates came from, for messages */
};

/* A special token as a string: "text" or {"content": "text", ...}; NULL if absent or null. */
static char *token_string(const json_t *config, const char *key) {
    const json_t *v = json_object_get(config, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? folio_xstrdup(json_string_value(v)) : NULL;
}

static int add_template(chat_template *ct, const char *name, const char *src) {
    if (ct->n == MAX_TEMPLATES)
        return folio_fail("%s: more than %d chat templates", ct->source, MAX_TEMPLATES);
    jinja_template *t = jinja_compile(src);
    if (!t) {
        if (strcmp(name, "default") != 0) folio_fail_context("template '%s'", name);
        return folio_fail_context("%s", ct->source);
    }
    ct->names[ct->n] = folio_xstrdup(name);
    ct->src[ct->n] = folio_xstrdup(src);
    ct->tpl[ct->n++] = t;
    return 0;
}

static int add_from_config(chat_template *ct, const json_t *value, const char *dir) {
    if (json_is_string(value)) return add_template(ct, "default", json_string_value(value));
    if (!json_is_array(value))
        return folio_fail("%s/tokenizer_config.json has no chat_template", dir);
    size_t k;
    const json_t *item;
    json_array_foreach(value, k, item) {
        const json_t *name = json_object_get(item, "name"), *src = json_object_get(item, "template");
        if (!json_is_string(name) || !json_is_string(src))
            return folio_fail("%s: chat_template[%zu] is not a {name, template} object",
                              ct->source, k);
        if (add_template(ct, json_string_value(name), json_string_value(src)) != 0) return -1;
    }
    return 0;
}

/* The contents of a text file, or NULL if it does not exist (any other failure: message). */
static char *read_text_file(const char *path, int *err) {
    *err = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *data = NULL;
    size_t n = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            char *p = folio_xmalloc(cap);
            if (n) memcpy(p, data, n);
            free(data);
            data = p;
        }
        memcpy(data + n, chunk, got);
        n += got;
    }
    if (ferror(f)) {
        *err = folio_fail("%s: read error", path);
        free(data);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (!data) data = folio_xstrdup("");
    else data[n] = '\0';
    return data;
}

static int load_templates(chat_template *ct, const char *dir, const json_t *config) {
    char path[4096];
    snprintf(path, sizeof path, "%s/chat_template.jinja", dir);
    int err;
    char *src = read_text_file(path, &err);
    if (err) return -1;
    if (src) {
        free(ct->source);
        ct->source = folio_xstrdup(path);
        int rc = add_template(ct, "default", src);
        free(src);
        return rc;
    }
    const json_t *value = json_object_get(config, "chat_template");
    if (!value || json_is_null(value))
        return folio_fail("%s/tokenizer_config.json has no chat_template", dir);
    return add_from_config(ct, value, dir);
}

/* model_dir's templates, or src (named origin) in their place; src NULL: the model's own. */
static chat_template *load(const char *model_dir, const char *src, const char *origin) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer_config.json", model_dir);
    json_error_t jerr;
    /* ints as reals: configs hold integers beyond 64 bits (model_max_length 1e30) */
    json_t *config = json_load_file(path, JSON_DECODE_INT_AS_REAL, &jerr);
    if (!config && !(src && jerr.line <= 0)) { /* a template given needs no config file */
        if (jerr.line > 0) folio_fail("%s: line %d: %s", path, jerr.line, jerr.text);
        else folio_fail("%s: %s", path, jerr.text);
        return NULL;
    }
    chat_template *ct = folio_xcalloc(1, sizeof *ct);
    ct->source = folio_xstrdup(src ? origin : path);
    if (config && !json_is_object(config)) {
        folio_fail("%s: expected a JSON object", path);
    } else if (src ? add_template(ct, "default", src) == 0
                   : load_templates(ct, model_dir, config) == 0) {
        ct->bos_token = token_string(config, "bos_token");
        ct->eos_token = token_string(config, "eos_token");
        json_decref(config);
        return ct;
    }
    json_decref(config);
    chat_template_free(ct);
    return NULL;
}

chat_template *chat_template_load(const char *model_dir) { return load(model_dir, NULL, NULL); }

chat_template *chat_template_load_source(const char *model_dir, const char *src,
                                         const char *origin) {
    return load(model_dir, src, origin);
}

/* The template file's name without its folder: rendering errors reach the server's clients,
 * who have no business knowing where the model lies (loading errors name the whole path). */
static const char *file_name(const char *path) {
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* transformers' choice among named templates: "tool_use" when tools are given and it exists,
 * else "default"; a single template is always used. */
static const jinja_template *pick(const chat_template *ct, bool have_tools) {
    if (ct->n == 1) return ct->tpl[0];
    for (int k = 0; have_tools && k < ct->n; k++)
        if (strcmp(ct->names[k], "tool_use") == 0) return ct->tpl[k];
    for (int k = 0; k < ct->n; k++)
        if (strcmp(ct->names[k], "default") == 0) return ct->tpl[k];
    folio_fail("%s: several chat templates and none named 'default'", file_name(ct->source));
    return NULL;
}

int chat_template_render(const chat_template *ct, const json_t *messages, const json_t *tools,
                         bool add_generation_prompt, char **out, size_t *out_len) {
    const jinja_template *t = pick(ct, tools && !json_is_null(tools));
    if (!t) return -1;
    json_t *ctx = json_object();
    json_object_set(ctx, "messages", (json_t *)messages);
    json_object_set_new(ctx, "tools", tools ? json_incref((json_t *)tools) : json_null());
    json_object_set_new(ctx, "add_generation_prompt", json_boolean(add_generation_prompt));
    if (ct->bos_token) json_object_set_new(ctx, "bos_token", json_string(ct->bos_token));
    if (ct->eos_token) json_object_set_new(ctx, "eos_token", json_string(ct->eos_token));
    int rc = jinja_render(t, ctx, out, out_len);
    json_decref(ctx);
    return rc == 0 ? 0 : folio_fail_context("%s", file_name(ct->source));
}

const char *chat_template_source(const chat_template *ct, int i) {
    return ct && i >= 0 && i < ct->n ? ct->src[i] : NULL;
}

void chat_template_free(chat_template *ct) {
    if (!ct) return;
    for (int k = 0; k < ct->n; k++) {
        free(ct->names[k]);
        free(ct->src[k]);
        jinja_free(ct->tpl[k]);
    }
    free(ct->bos_token);
    free(ct->eos_token);
    free(ct->source);
    free(ct);
}
