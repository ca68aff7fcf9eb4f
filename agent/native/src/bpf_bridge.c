// SPDX-License-Identifier: Apache-2.0
/*
 * bpf_bridge: a small N-API addon over libbpf. It moves bytes and reports errors; every policy
 * (which programs, which filters, what a record means) lives in TypeScript (agent/src/bpf).
 *
 * Handles: an object handle (open → configure → load → attach → close) and ring-reader handles.
 * Both are externals tagged with a type tag, so a wrong or foreign value is a TypeError, never a
 * crash. close() is idempotent and also runs from an env cleanup hook at exit.
 *
 * Ring reader: one pthread per reader waits on an epoll set holding the ring's epoll fd and an
 * eventfd (stop wakes it at once), with the poll timeout, then calls ring_buffer__consume, because
 * producers mostly submit with BPF_RB_NO_WAKEUP; it packs records
 * into batch buffers as [u32 length][u32 0][record][pad to 8]. Batch buffers are a fixed pool of
 * JS ArrayBuffers allocated up front; a full batch (or whatever is there at each poll timeout) is
 * handed to JS through a threadsafe function, one call per batch. The buffer goes back to the pool
 * when the JS callback returns, so its contents are only valid during the callback.
 * Backpressure: when JS falls behind and the pool is empty, the worker blocks instead of
 * allocating; it stops draining, the kernel ring fills up and the BPF side sees reserve failures
 * (which the probe counts). Memory stays bounded at pool size × batch size.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <node_api.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>

#define NAME_CAP 256
#define PATH_CAP 4096
#define LOG_CAP (64 * 1024)
#define MAX_READERS 32

/* ------------------------------------------------------------------------------------------ */
/* libbpf log capture: a bounded tail of everything libbpf prints (info and warnings), so load and
 * attach failures can carry the verifier log. libbpf may print from any thread; one mutex. */

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static char log_buf[LOG_CAP];
static size_t log_len;
static int log_debug;   /* KSCOPE_LIBBPF_DEBUG=1: capture debug lines too */
static int log_echo;    /* KSCOPE_LIBBPF_ECHO=1: also copy to stderr */

static void log_append(const char *s, size_t n)
{
	if (n >= LOG_CAP) {
		s += n - (LOG_CAP / 2);
		n = LOG_CAP / 2;
	}
	if (log_len + n > LOG_CAP) {
		/* keep the newest half: the tail of a verifier log is what explains a rejection */
		size_t keep = LOG_CAP / 2 > log_len ? log_len : LOG_CAP / 2;
		if (keep + n > LOG_CAP)
			keep = LOG_CAP - n;
		memmove(log_buf, log_buf + log_len - keep, keep);
		log_len = keep;
	}
	memcpy(log_buf + log_len, s, n);
	log_len += n;
}

static int print_fn(enum libbpf_print_level level, const char *fmt, va_list args)
{
	char line[2048], *buf = line;
	va_list again;
	int n;

	if (level == LIBBPF_DEBUG && !log_debug)
		return 0;
	va_copy(again, args);
	n = vsnprintf(line, sizeof(line), fmt, args);
	if (n >= (int)sizeof(line)) {
		/* libbpf prints a whole verifier log in one call, and its end is the rejection: format
		 * it completely (log_append keeps the tail if it exceeds the capture). */
		buf = malloc((size_t)n + 1);
		if (buf)
			n = vsnprintf(buf, (size_t)n + 1, fmt, again);
		else {
			buf = line;
			n = sizeof(line) - 1;
		}
	}
	va_end(again);
	if (n > 0) {
		pthread_mutex_lock(&log_mu);
		log_append(buf, (size_t)n);
		pthread_mutex_unlock(&log_mu);
		if (log_echo)
			fputs(buf, stderr);
	}
	if (buf != line)
		free(buf);
	return n < 0 ? 0 : n;
}

static void log_reset(void)
{
	pthread_mutex_lock(&log_mu);
	log_len = 0;
	pthread_mutex_unlock(&log_mu);
}

static napi_value log_string(napi_env env)
{
	napi_value v;

	pthread_mutex_lock(&log_mu);
	napi_create_string_utf8(env, log_buf, log_len, &v);
	pthread_mutex_unlock(&log_mu);
	return v;
}

/* ------------------------------------------------------------------------------------------ */
/* Handles */

static const napi_type_tag OBJ_TAG = { 0x6b73636f70656f62ULL, 0x6a6563745f763031ULL };
static const napi_type_tag READER_TAG = { 0x6b73636f70657262ULL, 0x7265616465723031ULL };

struct reader;

typedef struct bridge_obj {
	struct bpf_object *obj;
	char path[PATH_CAP];
	int loaded;
	int closed;
	int cleanup_hooked;
	napi_env env;
	int nprogs;
	struct bpf_program **progs;
	struct bpf_link **links;
	struct reader *readers[MAX_READERS];
} bridge_obj;

typedef struct batch {
	uint8_t *data;       /* backing store of a pooled JS ArrayBuffer */
	napi_ref ab_ref;
	uint32_t len;
	uint32_t count;
	int index;
} batch;

typedef struct reader {
	bridge_obj *owner;   /* NULL once detached from its object */
	struct ring_buffer *rb;
	int wake_fd;         /* eventfd written by stop, so the worker does not sleep out its timeout */
	int ep_fd;           /* epoll set: the ring's epoll fd and wake_fd */
	pthread_t thread;
	int thread_started;
	atomic_int stop;
	int stopped;         /* stop() ran (main thread only) */
	napi_threadsafe_function tsfn;
	napi_ref done_ref;   /* optional JS function called once every queued batch was delivered */
	int refs;            /* JS handle + threadsafe function; freed at 0 (main thread only) */
	napi_env env;
	int cleanup_hooked;
	struct reader *next_live, *prev_live; /* registry for the atexit handler */

	pthread_mutex_t mu;
	pthread_cond_t cv;
	batch *pool;
	int npool;
	int *free_stack;
	int nfree;
	int cur;             /* batch being filled by the worker, -1 if none */
	uint32_t batch_bytes;
	int timeout_ms;

	/* statistics, written by the worker, read by JS */
	atomic_uint_least64_t records, bytes, batches, waits, wait_ns, dropped_stopping, oversize,
		poll_errors, callback_errors, delivered_batches, renewed_buffers, lost_buffers;
	int last_poll_error;
} reader;

static void throw_errno(napi_env env, const char *what, int err)
{
	char msg[512];
	napi_value code, m, e, en;

	snprintf(msg, sizeof(msg), "%s: %s", what, strerror(err));
	napi_create_string_utf8(env, "BPF_ERRNO", NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
	napi_create_error(env, code, m, &e);
	napi_create_int32(env, err, &en);
	napi_set_named_property(env, e, "errno", en);
	napi_throw(env, e);
}

#define CHECK(call)                                                                                \
	do {                                                                                       \
		if ((call) != napi_ok)                                                             \
			return NULL;                                                               \
	} while (0)

static int get_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv)
{
	size_t argc = want;

	if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok)
		return -1;
	for (size_t i = argc; i < want; i++)
		napi_get_undefined(env, &argv[i]);
	return 0;
}

static int get_string(napi_env env, napi_value v, char *buf, size_t cap, const char *what)
{
	napi_valuetype t;
	size_t len;
	char msg[128];

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_string) {
		snprintf(msg, sizeof(msg), "%s must be a string", what);
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
		return -1;
	}
	if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok || len == 0 || len >= cap) {
		snprintf(msg, sizeof(msg), "%s must be a non-empty string shorter than %zu bytes", what, cap);
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return -1;
	}
	napi_get_value_string_utf8(env, v, buf, cap, &len);
	return 0;
}

static int get_buffer(napi_env env, napi_value v, void **data, size_t *len, const char *what)
{
	bool is;
	char msg[128];

	if (napi_is_buffer(env, v, &is) == napi_ok && is)
		return napi_get_buffer_info(env, v, data, len) == napi_ok ? 0 : -1;
	if (napi_is_typedarray(env, v, &is) == napi_ok && is) {
		napi_typedarray_type t;
		size_t n, off;
		napi_value ab;
		if (napi_get_typedarray_info(env, v, &t, &n, data, &ab, &off) != napi_ok || t != napi_uint8_array)
			goto bad;
		*len = n;
		return 0;
	}
bad:
	snprintf(msg, sizeof(msg), "%s must be a Buffer or Uint8Array", what);
	napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", msg);
	return -1;
}

static int get_u32(napi_env env, napi_value v, uint32_t *out, const char *what)
{
	napi_valuetype t;
	double d;
	char msg[128];

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_number ||
	    napi_get_value_double(env, v, &d) != napi_ok || d != d /* NaN */ || d < 0 || d > 4294967295.0 ||
	    d != (double)(uint32_t)d) {
		snprintf(msg, sizeof(msg), "%s must be an integer in [0, 2^32)", what);
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return -1;
	}
	*out = (uint32_t)d;
	return 0;
}

static bridge_obj *get_obj(napi_env env, napi_value v, int need_open)
{
	napi_valuetype t;
	bool ok = false;
	void *p = NULL;

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
	    napi_check_object_type_tag(env, v, &OBJ_TAG, &ok) != napi_ok || !ok ||
	    napi_get_value_external(env, v, &p) != napi_ok || !p) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a BPF object handle");
		return NULL;
	}
	if (need_open && ((bridge_obj *)p)->closed) {
		napi_throw_error(env, "BPF_CLOSED", "BPF object is closed");
		return NULL;
	}
	return p;
}

static struct bpf_program *find_prog(napi_env env, bridge_obj *o, napi_value v, int *idx)
{
	char name[NAME_CAP], msg[NAME_CAP + 64];

	if (get_string(env, v, name, sizeof(name), "program name"))
		return NULL;
	for (int i = 0; i < o->nprogs; i++) {
		if (strcmp(bpf_program__name(o->progs[i]), name) == 0) {
			if (idx)
				*idx = i;
			return o->progs[i];
		}
	}
	snprintf(msg, sizeof(msg), "no program named '%s'", name);
	napi_throw_error(env, "BPF_NOT_FOUND", msg);
	return NULL;
}

static struct bpf_map *find_map(napi_env env, bridge_obj *o, napi_value v)
{
	char name[NAME_CAP], msg[NAME_CAP + 64];
	struct bpf_map *m;

	if (get_string(env, v, name, sizeof(name), "map name"))
		return NULL;
	m = bpf_object__find_map_by_name(o->obj, name);
	if (!m) {
		snprintf(msg, sizeof(msg), "no map named '%s'", name);
		napi_throw_error(env, "BPF_NOT_FOUND", msg);
	}
	return m;
}

static int require_loaded(napi_env env, bridge_obj *o, int loaded)
{
	if (o->loaded == loaded)
		return 0;
	if (o->loaded < 0)
		napi_throw_error(env, "BPF_STATE", "loading this BPF object failed; open it again to retry");
	else
		napi_throw_error(env, "BPF_STATE",
				 loaded ? "BPF object is not loaded yet" : "BPF object is already loaded; configure before load()");
	return -1;
}

static void set_str(napi_env env, napi_value o, const char *k, const char *s)
{
	napi_value v;

	napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v);
	napi_set_named_property(env, o, k, v);
}

static void set_num(napi_env env, napi_value o, const char *k, double d)
{
	napi_value v;

	napi_create_double(env, d, &v);
	napi_set_named_property(env, o, k, v);
}

static void set_bool(napi_env env, napi_value o, const char *k, bool b)
{
	napi_value v;

	napi_get_boolean(env, b, &v);
	napi_set_named_property(env, o, k, v);
}

/* ------------------------------------------------------------------------------------------ */
/* Ring reader lifecycle (main thread) */

/* Running reader threads, so process exit (which skips env cleanup) can stop them first. */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static struct reader *live_head;

static void live_add(reader *r)
{
	pthread_mutex_lock(&live_mu);
	r->next_live = live_head;
	r->prev_live = NULL;
	if (live_head)
		live_head->prev_live = r;
	live_head = r;
	pthread_mutex_unlock(&live_mu);
}

static void live_remove(reader *r)
{
	pthread_mutex_lock(&live_mu);
	if (r->prev_live)
		r->prev_live->next_live = r->next_live;
	else if (live_head == r)
		live_head = r->next_live;
	if (r->next_live)
		r->next_live->prev_live = r->prev_live;
	r->next_live = r->prev_live = NULL;
	pthread_mutex_unlock(&live_mu);
}

/* Stops and joins the worker (no N-API calls: also used at exit). */
static void reader_halt_thread(reader *r)
{
	uint64_t one = 1;

	pthread_mutex_lock(&r->mu);
	atomic_store(&r->stop, 1);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	if (r->wake_fd >= 0 && write(r->wake_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the worker is awake anyway */
	}
	if (r->thread_started)
		pthread_join(r->thread, NULL);
	r->thread_started = 0;
}

static void halt_all_at_exit(void)
{
	pthread_mutex_lock(&live_mu);
	for (reader *r = live_head; r; r = r->next_live)
		reader_halt_thread(r);
	pthread_mutex_unlock(&live_mu);
}

static void reader_cleanup_hook(void *arg);

static void reader_unref(reader *r)
{
	if (--r->refs > 0)
		return;
	if (r->ep_fd >= 0)
		close(r->ep_fd);
	if (r->wake_fd >= 0)
		close(r->wake_fd);
	pthread_mutex_destroy(&r->mu);
	pthread_cond_destroy(&r->cv);
	free(r->free_stack);
	free(r->pool);
	free(r);
}

/* Stops the worker and releases the threadsafe function; batches already queued are still
 * delivered, then the pool is freed in tsfn_finalize. Idempotent. */
static void reader_stop(reader *r)
{
	if (r->stopped)
		return;
	r->stopped = 1;
	reader_halt_thread(r);
	live_remove(r);
	if (r->cleanup_hooked) {
		r->cleanup_hooked = 0;
		napi_remove_env_cleanup_hook(r->env, reader_cleanup_hook, r);
	}
	if (r->rb)
		ring_buffer__free(r->rb);
	r->rb = NULL;
	if (r->owner) {
		for (int i = 0; i < MAX_READERS; i++)
			if (r->owner->readers[i] == r)
				r->owner->readers[i] = NULL;
		r->owner = NULL;
	}
	if (r->tsfn)
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
}

/* ------------------------------------------------------------------------------------------ */
/* Object lifecycle */

static void obj_close(bridge_obj *o)
{
	if (o->closed)
		return;
	o->closed = 1;
	/* Detach first, then stop the readers: their last drain then sees every record the
	 * programs submitted (the other order loses, uncounted, what arrives in between). */
	for (int i = 0; i < o->nprogs; i++) {
		if (o->links && o->links[i])
			bpf_link__destroy(o->links[i]);
		if (o->links)
			o->links[i] = NULL;
	}
	for (int i = 0; i < MAX_READERS; i++)
		if (o->readers[i])
			reader_stop(o->readers[i]);
	if (o->obj)
		bpf_object__close(o->obj);
	o->obj = NULL;
	free(o->links);
	free(o->progs);
	o->links = NULL;
	o->progs = NULL;
	o->nprogs = 0;
}

static void obj_cleanup_hook(void *arg)
{
	bridge_obj *o = arg;

	o->cleanup_hooked = 0;
	obj_close(o);
}

static void obj_finalize(napi_env env, void *data, void *hint)
{
	bridge_obj *o = data;

	obj_close(o);
	if (o->cleanup_hooked)
		napi_remove_env_cleanup_hook(env, obj_cleanup_hook, o);
	free(o);
}

/* open(path, opts?) → handle. opts.btfCustomPath: resolve CO-RE relocations against this BTF
 * file instead of the running kernel's (attach targets still come from the kernel). */
static napi_value js_open(napi_env env, napi_callback_info info)
{
	napi_value argv[2], handle, v;
	napi_valuetype t;
	char path[PATH_CAP], btf_path[PATH_CAP];
	struct bpf_object *obj;
	struct bpf_program *p;
	bridge_obj *o;
	bool has = false;
	int n = 0, err;
	LIBBPF_OPTS(bpf_object_open_opts, open_opts);

	if (get_args(env, info, 2, argv) || get_string(env, argv[0], path, sizeof(path), "path"))
		return NULL;
	if (napi_typeof(env, argv[1], &t) != napi_ok || (t != napi_undefined && t != napi_null && t != napi_object)) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "options must be an object");
		return NULL;
	}
	if (t == napi_object && napi_has_named_property(env, argv[1], "btfCustomPath", &has) == napi_ok && has &&
	    napi_get_named_property(env, argv[1], "btfCustomPath", &v) == napi_ok &&
	    napi_typeof(env, v, &t) == napi_ok && t != napi_undefined) {
		if (get_string(env, v, btf_path, sizeof(btf_path), "btfCustomPath"))
			return NULL;
		open_opts.btf_custom_path = btf_path;
	}
	log_reset();
	obj = bpf_object__open_file(path, &open_opts);
	if (!obj) {
		err = errno ? errno : EINVAL;
		char what[PATH_CAP + 32];
		snprintf(what, sizeof(what), "open BPF object %s", path);
		throw_errno(env, what, err);
		return NULL;
	}
	o = calloc(1, sizeof(*o));
	if (!o) {
		bpf_object__close(obj);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	o->obj = obj;
	o->env = env;
	snprintf(o->path, sizeof(o->path), "%s", path);
	bpf_object__for_each_program(p, obj) n++;
	o->progs = calloc(n ? n : 1, sizeof(*o->progs));
	o->links = calloc(n ? n : 1, sizeof(*o->links));
	if (!o->progs || !o->links) {
		o->closed = 0;
		obj_close(o);
		free(o);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	o->nprogs = n;
	n = 0;
	bpf_object__for_each_program(p, obj) o->progs[n++] = p;

	if (napi_create_external(env, o, obj_finalize, NULL, &handle) != napi_ok) {
		obj_close(o);
		free(o);
		return NULL;
	}
	if (napi_type_tag_object(env, handle, &OBJ_TAG) != napi_ok) {
		/* the external exists: its finalizer frees o, so only close it here */
		obj_close(o);
		return NULL;
	}
	if (napi_add_env_cleanup_hook(env, obj_cleanup_hook, o) == napi_ok)
		o->cleanup_hooked = 1;
	return handle;
}

static napi_value js_close(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	bridge_obj *o;

	if (get_args(env, info, 1, argv) || !(o = get_obj(env, argv[0], 0)))
		return NULL;
	obj_close(o);
	return NULL;
}

static napi_value js_programs(napi_env env, napi_callback_info info)
{
	napi_value argv[1], arr, item;
	bridge_obj *o;

	if (get_args(env, info, 1, argv) || !(o = get_obj(env, argv[0], 1)))
		return NULL;
	CHECK(napi_create_array_with_length(env, o->nprogs, &arr));
	for (int i = 0; i < o->nprogs; i++) {
		struct bpf_program *p = o->progs[i];
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_program__name(p));
		set_str(env, item, "section", bpf_program__section_name(p));
		set_str(env, item, "type", libbpf_bpf_prog_type_str(bpf_program__type(p)));
		set_bool(env, item, "autoload", bpf_program__autoload(p));
		set_bool(env, item, "loaded", o->loaded && bpf_program__fd(p) >= 0);
		set_bool(env, item, "attached", o->links[i] != NULL);
		napi_set_element(env, arr, i, item);
	}
	return arr;
}

static napi_value js_maps(napi_env env, napi_callback_info info)
{
	napi_value argv[1], arr, item;
	bridge_obj *o;
	struct bpf_map *m;
	uint32_t i = 0;

	if (get_args(env, info, 1, argv) || !(o = get_obj(env, argv[0], 1)))
		return NULL;
	CHECK(napi_create_array(env, &arr));
	bpf_object__for_each_map(m, o->obj) {
		napi_create_object(env, &item);
		set_str(env, item, "name", bpf_map__name(m));
		set_str(env, item, "type", libbpf_bpf_map_type_str(bpf_map__type(m)));
		set_num(env, item, "keySize", bpf_map__key_size(m));
		set_num(env, item, "valueSize", bpf_map__value_size(m));
		set_num(env, item, "maxEntries", bpf_map__max_entries(m));
		set_bool(env, item, "internal", bpf_map__is_internal(m));
		napi_set_element(env, arr, i++, item);
	}
	return arr;
}

/* ------------------------------------------------------------------------------------------ */
/* Globals: `const volatile` (and other) variables in .rodata/.data/.bss, found through BTF. */

typedef struct global_var {
	const char *name;
	const char *section;
	uint32_t offset;
	uint32_t size;
	struct bpf_map *map;
} global_var;

static struct bpf_map *section_map(struct bpf_object *obj, const char *sec)
{
	struct bpf_map *m;
	size_t sl = strlen(sec);

	/* libbpf names internal maps "<object prefix><section>", e.g. "selftes.rodata" */
	bpf_object__for_each_map(m, obj) {
		const char *n = bpf_map__name(m);
		size_t nl = strlen(n);
		if (bpf_map__is_internal(m) && nl >= sl && strcmp(n + nl - sl, sec) == 0)
			return m;
	}
	return NULL;
}

/* Calls fn for each variable of each data section; stops when fn returns non-zero. */
static int for_each_global(struct bpf_object *obj, int (*fn)(global_var *, void *), void *ctx)
{
	struct btf *btf = bpf_object__btf(obj);
	uint32_t n;

	if (!btf)
		return 0;
	n = btf__type_cnt(btf);
	for (uint32_t id = 1; id < n; id++) {
		const struct btf_type *t = btf__type_by_id(btf, id);
		const struct btf_var_secinfo *vs;
		const char *sec;
		struct bpf_map *map;

		if (!t || !btf_is_datasec(t))
			continue;
		sec = btf__name_by_offset(btf, t->name_off);
		if (!sec || sec[0] != '.' || strcmp(sec, ".maps") == 0 || strncmp(sec, ".kconfig", 8) == 0)
			continue;
		map = section_map(obj, sec);
		if (!map)
			continue;
		vs = btf_var_secinfos(t);
		for (uint16_t i = 0; i < btf_vlen(t); i++, vs++) {
			const struct btf_type *vt = btf__type_by_id(btf, vs->type);
			global_var g;
			if (!vt || !btf_is_var(vt))
				continue;
			g.name = btf__name_by_offset(btf, vt->name_off);
			g.section = sec;
			g.offset = vs->offset;
			g.size = vs->size;
			g.map = map;
			if (g.name && fn(&g, ctx))
				return 1;
		}
	}
	return 0;
}

typedef struct {
	napi_env env;
	napi_value arr;
	uint32_t i;
} list_ctx;

static int list_global(global_var *g, void *arg)
{
	list_ctx *c = arg;
	napi_value item;

	napi_create_object(c->env, &item);
	set_str(c->env, item, "name", g->name);
	set_str(c->env, item, "section", g->section);
	set_num(c->env, item, "offset", g->offset);
	set_num(c->env, item, "size", g->size);
	napi_set_element(c->env, c->arr, c->i++, item);
	return 0;
}

static napi_value js_globals(napi_env env, napi_callback_info info)
{
	napi_value argv[1];
	bridge_obj *o;
	list_ctx c = { env, NULL, 0 };

	if (get_args(env, info, 1, argv) || !(o = get_obj(env, argv[0], 1)))
		return NULL;
	CHECK(napi_create_array(env, &c.arr));
	for_each_global(o->obj, list_global, &c);
	return c.arr;
}

typedef struct {
	const char *name;
	global_var found;
	int hit;
} find_ctx;

static int find_global(global_var *g, void *arg)
{
	find_ctx *c = arg;

	if (strcmp(g->name, c->name) != 0)
		return 0;
	c->found = *g;
	c->hit = 1;
	return 1;
}

/* setGlobal(h, name, bytes): the value must have exactly the variable's size */
static napi_value js_set_global(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	bridge_obj *o;
	char name[NAME_CAP], msg[NAME_CAP + 128];
	void *data;
	size_t len, msize = 0;
	find_ctx c = { name, {0}, 0 };
	const void *init;
	uint8_t *copy;
	int err;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) ||
	    get_string(env, argv[1], name, sizeof(name), "global name") ||
	    get_buffer(env, argv[2], &data, &len, "value") || require_loaded(env, o, 0))
		return NULL;
	for_each_global(o->obj, find_global, &c);
	if (!c.hit) {
		snprintf(msg, sizeof(msg), "no global variable named '%s' in a data section", name);
		napi_throw_error(env, "BPF_NOT_FOUND", msg);
		return NULL;
	}
	if (len != c.found.size) {
		snprintf(msg, sizeof(msg), "global '%s' is %u bytes, got %zu", name, c.found.size, len);
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", msg);
		return NULL;
	}
	init = bpf_map__initial_value(c.found.map, &msize);
	if (!init || (size_t)c.found.offset + c.found.size > msize) {
		snprintf(msg, sizeof(msg), "global '%s' lies outside its section map (%zu bytes)", name, msize);
		napi_throw_error(env, "BPF_BOUNDS", msg);
		return NULL;
	}
	copy = malloc(msize);
	if (!copy) {
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	memcpy(copy, init, msize);
	memcpy(copy + c.found.offset, data, len);
	err = bpf_map__set_initial_value(c.found.map, copy, msize);
	free(copy);
	if (err) {
		snprintf(msg, sizeof(msg), "set global '%s'", name);
		throw_errno(env, msg, -err);
	}
	return NULL;
}

/* getGlobal(h, name) → Buffer: the current initial value (what load() will use) */
static napi_value js_get_global(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	bridge_obj *o;
	char name[NAME_CAP], msg[NAME_CAP + 64];
	find_ctx c = { name, {0}, 0 };
	size_t msize = 0;
	const uint8_t *init;

	if (get_args(env, info, 2, argv) || !(o = get_obj(env, argv[0], 1)) ||
	    get_string(env, argv[1], name, sizeof(name), "global name"))
		return NULL;
	for_each_global(o->obj, find_global, &c);
	if (!c.hit) {
		snprintf(msg, sizeof(msg), "no global variable named '%s'", name);
		napi_throw_error(env, "BPF_NOT_FOUND", msg);
		return NULL;
	}
	init = bpf_map__initial_value(c.found.map, &msize);
	if (!init || (size_t)c.found.offset + c.found.size > msize) {
		napi_throw_error(env, "BPF_BOUNDS", "global lies outside its section map");
		return NULL;
	}
	CHECK(napi_create_buffer_copy(env, c.found.size, init + c.found.offset, NULL, &out));
	return out;
}

static napi_value js_set_autoload(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	bridge_obj *o;
	struct bpf_program *p;
	bool on;
	int err;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) || !(p = find_prog(env, o, argv[1], NULL)))
		return NULL;
	if (napi_get_value_bool(env, argv[2], &on) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "autoload must be a boolean");
		return NULL;
	}
	if (require_loaded(env, o, 0))
		return NULL;
	err = bpf_program__set_autoload(p, on);
	if (err)
		throw_errno(env, "set autoload", -err);
	return NULL;
}

static napi_value js_set_max_entries(napi_env env, napi_callback_info info)
{
	napi_value argv[3];
	bridge_obj *o;
	struct bpf_map *m;
	uint32_t n;
	int err;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    get_u32(env, argv[2], &n, "maxEntries") || require_loaded(env, o, 0))
		return NULL;
	if (n == 0) {
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "maxEntries must be > 0");
		return NULL;
	}
	err = bpf_map__set_max_entries(m, n);
	if (err)
		throw_errno(env, "set max entries", -err);
	return NULL;
}

/* load(h): a failure throws an Error with code BPF_LOAD, errno and the captured libbpf log
 * (which includes the verifier log of the rejected program). */
static napi_value js_load(napi_env env, napi_callback_info info)
{
	napi_value argv[1], code, m, e, en;
	bridge_obj *o;
	char msg[PATH_CAP + 128];
	int err;

	if (get_args(env, info, 1, argv) || !(o = get_obj(env, argv[0], 1)) || require_loaded(env, o, 0))
		return NULL;
	log_reset();
	err = bpf_object__load(o->obj);
	if (!err) {
		o->loaded = 1;
		return NULL;
	}
	err = -err;
	/* libbpf cannot load an object twice, even after a failure: mark it so setters refuse */
	o->loaded = -1;
	snprintf(msg, sizeof(msg), "load %s: %s", o->path, strerror(err));
	napi_create_string_utf8(env, "BPF_LOAD", NAPI_AUTO_LENGTH, &code);
	napi_create_string_utf8(env, msg, NAPI_AUTO_LENGTH, &m);
	napi_create_error(env, code, m, &e);
	napi_create_int32(env, err, &en);
	napi_set_named_property(env, e, "errno", en);
	napi_set_named_property(env, e, "log", log_string(env));
	napi_throw(env, e);
	return NULL;
}

/* attach(h, prog) → {program, ok, errno?, error?, log?}; never throws for an attach failure */
static napi_value js_attach(napi_env env, napi_callback_info info)
{
	napi_value argv[2], res, log;
	bridge_obj *o;
	struct bpf_program *p;
	struct bpf_link *l;
	int idx = 0, err;

	if (get_args(env, info, 2, argv) || !(o = get_obj(env, argv[0], 1)) || !(p = find_prog(env, o, argv[1], &idx)) ||
	    require_loaded(env, o, 1))
		return NULL;
	CHECK(napi_create_object(env, &res));
	set_str(env, res, "program", bpf_program__name(p));
	if (o->links[idx]) {
		set_bool(env, res, "ok", true);
		return res;
	}
	if (bpf_program__fd(p) < 0) {
		set_bool(env, res, "ok", false);
		set_num(env, res, "errno", ENOENT);
		set_str(env, res, "error", "program was not loaded (autoload off)");
		return res;
	}
	log_reset();
	errno = 0;
	l = bpf_program__attach(p);
	if (l) {
		o->links[idx] = l;
		set_bool(env, res, "ok", true);
		return res;
	}
	err = errno ? errno : EINVAL;
	set_bool(env, res, "ok", false);
	set_num(env, res, "errno", err);
	set_str(env, res, "error", strerror(err));
	log = log_string(env);
	napi_set_named_property(env, res, "log", log);
	return res;
}

static napi_value js_detach(napi_env env, napi_callback_info info)
{
	napi_value argv[2], r;
	bridge_obj *o;
	struct bpf_program *p;
	int idx = 0;
	bool had;

	if (get_args(env, info, 2, argv) || !(o = get_obj(env, argv[0], 1)) || !(p = find_prog(env, o, argv[1], &idx)))
		return NULL;
	had = o->links[idx] != NULL;
	if (had)
		bpf_link__destroy(o->links[idx]);
	o->links[idx] = NULL;
	napi_get_boolean(env, had, &r);
	return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Maps */

static size_t value_bytes(struct bpf_map *m, int *percpu)
{
	enum bpf_map_type t = bpf_map__type(m);
	size_t vs = bpf_map__value_size(m);

	*percpu = t == BPF_MAP_TYPE_PERCPU_ARRAY || t == BPF_MAP_TYPE_PERCPU_HASH ||
		  t == BPF_MAP_TYPE_LRU_PERCPU_HASH || t == BPF_MAP_TYPE_PERCPU_CGROUP_STORAGE;
	if (!*percpu)
		return vs;
	int ncpu = libbpf_num_possible_cpus();
	return ((vs + 7) & ~(size_t)7) * (size_t)(ncpu > 0 ? ncpu : 1);
}

static int map_fd_checked(napi_env env, bridge_obj *o, struct bpf_map *m)
{
	int fd;
	enum bpf_map_type t = bpf_map__type(m);

	if (require_loaded(env, o, 1))
		return -1;
	if (t == BPF_MAP_TYPE_RINGBUF || t == BPF_MAP_TYPE_USER_RINGBUF || t == BPF_MAP_TYPE_PERF_EVENT_ARRAY) {
		napi_throw_error(env, "BPF_MAP_TYPE", "this map type has no keyed values");
		return -1;
	}
	fd = bpf_map__fd(m);
	if (fd < 0)
		napi_throw_error(env, "BPF_STATE", "map has no file descriptor");
	return fd;
}

/* mapId(h, map) → the kernel's id of a loaded map (for bpftool map … id N) */
static napi_value js_map_id(napi_env env, napi_callback_info info)
{
	napi_value argv[2], out;
	bridge_obj *o;
	struct bpf_map *m;
	struct bpf_map_info mi;
	uint32_t len = sizeof(mi);
	int fd;

	if (get_args(env, info, 2, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    require_loaded(env, o, 1))
		return NULL;
	fd = bpf_map__fd(m);
	memset(&mi, 0, sizeof(mi));
	if (fd < 0 || bpf_obj_get_info_by_fd(fd, &mi, &len)) {
		throw_errno(env, "map info", fd < 0 ? EBADF : errno);
		return NULL;
	}
	CHECK(napi_create_uint32(env, mi.id, &out));
	return out;
}

/* mapLookup(h, map, key) → Buffer | null */
static napi_value js_map_lookup(napi_env env, napi_callback_info info)
{
	napi_value argv[3], out;
	bridge_obj *o;
	struct bpf_map *m;
	void *key, *val;
	size_t klen, vlen;
	int fd, percpu, err;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    get_buffer(env, argv[2], &key, &klen, "key") || (fd = map_fd_checked(env, o, m)) < 0)
		return NULL;
	if (klen != bpf_map__key_size(m)) {
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "key length does not match the map's key size");
		return NULL;
	}
	vlen = value_bytes(m, &percpu);
	CHECK(napi_create_buffer(env, vlen, &val, &out));
	memset(val, 0, vlen);
	err = bpf_map_lookup_elem(fd, key, val);
	if (err) {
		err = errno;
		if (err == ENOENT) {
			napi_get_null(env, &out);
			return out;
		}
		throw_errno(env, "map lookup", err);
		return NULL;
	}
	return out;
}

/* mapUpdate(h, map, key, value): value is the full (per-CPU concatenated) size */
static napi_value js_map_update(napi_env env, napi_callback_info info)
{
	napi_value argv[4];
	bridge_obj *o;
	struct bpf_map *m;
	void *key, *val;
	size_t klen, vlen;
	int fd, percpu;

	if (get_args(env, info, 4, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    get_buffer(env, argv[2], &key, &klen, "key") || get_buffer(env, argv[3], &val, &vlen, "value") ||
	    (fd = map_fd_checked(env, o, m)) < 0)
		return NULL;
	if (klen != bpf_map__key_size(m) || vlen != value_bytes(m, &percpu)) {
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "key or value length does not match the map");
		return NULL;
	}
	if (bpf_map_update_elem(fd, key, val, BPF_ANY))
		throw_errno(env, "map update", errno);
	return NULL;
}

/* mapDelete(h, map, key) → boolean (false when absent) */
static napi_value js_map_delete(napi_env env, napi_callback_info info)
{
	napi_value argv[3], r;
	bridge_obj *o;
	struct bpf_map *m;
	void *key;
	size_t klen;
	int fd;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    get_buffer(env, argv[2], &key, &klen, "key") || (fd = map_fd_checked(env, o, m)) < 0)
		return NULL;
	if (klen != bpf_map__key_size(m)) {
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE", "key length does not match the map's key size");
		return NULL;
	}
	if (bpf_map_delete_elem(fd, key)) {
		if (errno != ENOENT) {
			throw_errno(env, "map delete", errno);
			return NULL;
		}
		napi_get_boolean(env, false, &r);
		return r;
	}
	napi_get_boolean(env, true, &r);
	return r;
}

/* mapEntries(h, map, limit?) → [[key, value], ...], at most `limit` (default max_entries) */
static napi_value js_map_entries(napi_env env, napi_callback_info info)
{
	napi_value argv[3], arr, pair, kb, vb;
	bridge_obj *o;
	struct bpf_map *m;
	napi_valuetype t;
	uint32_t limit, i = 0;
	size_t ks, vs;
	uint8_t *cur = NULL, *next = NULL, *val = NULL;
	int fd, percpu, first = 1;

	if (get_args(env, info, 3, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])) ||
	    (fd = map_fd_checked(env, o, m)) < 0)
		return NULL;
	limit = bpf_map__max_entries(m);
	if (napi_typeof(env, argv[2], &t) == napi_ok && t != napi_undefined && get_u32(env, argv[2], &limit, "limit"))
		return NULL;
	ks = bpf_map__key_size(m);
	vs = value_bytes(m, &percpu);
	cur = calloc(1, ks ? ks : 1);
	next = calloc(1, ks ? ks : 1);
	val = calloc(1, vs ? vs : 1);
	if (!cur || !next || !val) {
		free(cur), free(next), free(val);
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	napi_create_array(env, &arr);
	while (i < limit) {
		if (bpf_map_get_next_key(fd, first ? NULL : cur, next)) {
			if (errno != ENOENT)
				throw_errno(env, "map iterate", errno);
			break;
		}
		first = 0;
		memcpy(cur, next, ks);
		if (bpf_map_lookup_elem(fd, cur, val))
			continue; /* deleted meanwhile */
		napi_create_buffer_copy(env, ks, cur, NULL, &kb);
		napi_create_buffer_copy(env, vs, val, NULL, &vb);
		napi_create_array_with_length(env, 2, &pair);
		napi_set_element(env, pair, 0, kb);
		napi_set_element(env, pair, 1, vb);
		napi_set_element(env, arr, i++, pair);
	}
	free(cur), free(next), free(val);
	return arr;
}

/* ------------------------------------------------------------------------------------------ */
/* BTF */

/* btfStruct(h, name) → {name, kind, size, members: [{name, offsetBits, sizeBits}]} | null */
static napi_value js_btf_struct(napi_env env, napi_callback_info info)
{
	napi_value argv[2], res, members, item;
	bridge_obj *o;
	char name[NAME_CAP];
	struct btf *btf;
	const struct btf_type *t;
	const struct btf_member *mb;
	int id;

	if (get_args(env, info, 2, argv) || !(o = get_obj(env, argv[0], 1)) ||
	    get_string(env, argv[1], name, sizeof(name), "struct name"))
		return NULL;
	btf = bpf_object__btf(o->obj);
	id = btf ? btf__find_by_name_kind(btf, name, BTF_KIND_STRUCT) : -ENOENT;
	if (btf && id < 0)
		id = btf__find_by_name_kind(btf, name, BTF_KIND_UNION);
	if (id < 0) {
		napi_get_null(env, &res);
		return res;
	}
	t = btf__type_by_id(btf, id);
	CHECK(napi_create_object(env, &res));
	set_str(env, res, "name", name);
	set_str(env, res, "kind", btf_is_union(t) ? "union" : "struct");
	set_num(env, res, "size", t->size);
	napi_create_array(env, &members);
	mb = btf_members(t);
	for (uint16_t i = 0; i < btf_vlen(t); i++, mb++) {
		uint32_t bits = btf_member_bitfield_size(t, i);
		__s64 sz;
		if (!bits) {
			sz = btf__resolve_size(btf, mb->type);
			bits = sz > 0 ? (uint32_t)sz * 8 : 0;
		}
		napi_create_object(env, &item);
		set_str(env, item, "name", btf__name_by_offset(btf, mb->name_off));
		set_num(env, item, "offsetBits", btf_member_bit_offset(t, i));
		set_num(env, item, "sizeBits", bits);
		napi_set_element(env, members, i, item);
	}
	napi_set_named_property(env, res, "members", members);
	return res;
}

/* ------------------------------------------------------------------------------------------ */
/* Ring reader: worker side */

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

static void batch_release(reader *r, batch *b)
{
	pthread_mutex_lock(&r->mu);
	b->len = 0;
	b->count = 0;
	r->free_stack[r->nfree++] = b->index;
	pthread_cond_signal(&r->cv);
	pthread_mutex_unlock(&r->mu);
}

/* Waits for a free batch; returns -1 only when stopping. This wait is the backpressure. */
static int batch_acquire(reader *r)
{
	uint64_t t0 = 0;

	pthread_mutex_lock(&r->mu);
	if (r->nfree == 0 && !atomic_load(&r->stop)) {
		atomic_fetch_add(&r->waits, 1);
		t0 = mono_ns();
		while (r->nfree == 0 && !atomic_load(&r->stop))
			pthread_cond_wait(&r->cv, &r->mu);
		atomic_fetch_add(&r->wait_ns, mono_ns() - t0);
	}
	if (r->nfree == 0) {
		pthread_mutex_unlock(&r->mu);
		return -1;
	}
	r->cur = r->free_stack[--r->nfree];
	pthread_mutex_unlock(&r->mu);
	return 0;
}

static void batch_flush(reader *r)
{
	batch *b;

	if (r->cur < 0)
		return;
	b = &r->pool[r->cur];
	if (b->count == 0)
		return;
	r->cur = -1;
	atomic_fetch_add(&r->batches, 1);
	if (napi_call_threadsafe_function(r->tsfn, b, napi_tsfn_nonblocking) != napi_ok) {
		/* closing: the records are lost, count them */
		atomic_fetch_add(&r->dropped_stopping, b->count);
		batch_release(r, b);
	}
}

static int on_sample(void *ctx, void *data, size_t size)
{
	reader *r = ctx;
	uint32_t need = 8 + (((uint32_t)size + 7) & ~7u);
	batch *b;

	if (need > r->batch_bytes) {
		atomic_fetch_add(&r->oversize, 1);
		return 0;
	}
	if (r->cur >= 0 && r->pool[r->cur].len + need > r->batch_bytes)
		batch_flush(r);
	if (r->cur < 0 && batch_acquire(r) < 0) {
		/* stopping with every batch still held by JS: count the rest of the ring as dropped,
		 * consuming it so the count covers everything in the ring at the last drain. Only
		 * obj_close detaches the programs before that drain; a reader stopped on its own
		 * (RingReader.stop) while programs are attached leaves later records uncounted in
		 * the ring (LiveSource.drain detaches first for that reason). */
		atomic_fetch_add(&r->dropped_stopping, 1);
		return 0;
	}
	b = &r->pool[r->cur];
	uint8_t *p = b->data + b->len;
	uint32_t hdr[2] = { (uint32_t)size, 0 };
	memcpy(p, hdr, 8);
	memcpy(p + 8, data, size);
	if (need - 8 > size)
		memset(p + 8 + size, 0, need - 8 - size);
	b->len += need;
	b->count++;
	atomic_fetch_add_explicit(&r->records, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&r->bytes, size, memory_order_relaxed);
	return 0;
}

static void *reader_main(void *arg)
{
	reader *r = arg;
	struct epoll_event evs[2];
	int n;

	while (!atomic_load(&r->stop)) {
		/* wakes on a forced ring wakeup or on stop (wake_fd); else drains on the timeout */
		n = epoll_wait(r->ep_fd, evs, 2, r->timeout_ms);
		if (n < 0 && errno != EINTR) {
			atomic_fetch_add(&r->poll_errors, 1);
			r->last_poll_error = errno;
		}
		if (atomic_load(&r->stop))
			break;
		ring_buffer__consume(r->rb);
		batch_flush(r);
	}
	/* final drain of what is already in the ring, as far as free batches allow */
	ring_buffer__consume(r->rb);
	batch_flush(r);
	if (r->cur >= 0) {
		batch_release(r, &r->pool[r->cur]);
		r->cur = -1;
	}
	napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
	return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Ring reader: JS side */

/*
 * The callback may have detached the batch's ArrayBuffer (structuredClone/postMessage with
 * transfer): its memory now belongs to another ArrayBuffer that JS owns and may free, so the
 * worker must never write there again. Gives the slot a fresh ArrayBuffer (main thread; the worker
 * only touches b->data once the batch is back in the free stack). Returns -1 if none could be
 * made: the caller then keeps the slot out of the pool.
 */
static int batch_renew_if_detached(napi_env env, reader *r, batch *b, napi_value ab)
{
	bool detached = false;
	napi_value fresh;
	napi_ref ref;
	void *data;

	if (napi_is_detached_arraybuffer(env, ab, &detached) != napi_ok || !detached)
		return 0;
	atomic_fetch_add(&r->renewed_buffers, 1);
	if (napi_create_arraybuffer(env, r->batch_bytes, &data, &fresh) != napi_ok ||
	    napi_create_reference(env, fresh, 1, &ref) != napi_ok) {
		bool pending = false;
		napi_value exc;
		if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
			napi_get_and_clear_last_exception(env, &exc);
		atomic_fetch_add(&r->lost_buffers, 1);
		return -1;
	}
	napi_delete_reference(env, b->ab_ref);
	b->ab_ref = ref;
	b->data = data;
	return 0;
}

static void call_js(napi_env env, napi_value cb, void *context, void *data)
{
	reader *r = context;
	batch *b = data;
	napi_value argv[3], ab, undef, exc;
	bool pending = false;

	if (!env || !cb) {
		/* the function is being torn down with this batch still queued */
		batch_release(r, b);
		return;
	}
	if (napi_get_reference_value(env, b->ab_ref, &ab) != napi_ok || !ab) {
		batch_release(r, b);
		return;
	}
	argv[0] = ab;
	napi_create_uint32(env, b->len, &argv[1]);
	napi_create_uint32(env, b->count, &argv[2]);
	napi_get_undefined(env, &undef);
	napi_call_function(env, undef, cb, 3, argv, NULL);
	if (napi_is_exception_pending(env, &pending) == napi_ok && pending) {
		/* the TS wrapper already catches; this guards the process against anything else */
		napi_get_and_clear_last_exception(env, &exc);
		atomic_fetch_add(&r->callback_errors, 1);
	}
	atomic_fetch_add(&r->delivered_batches, 1);
	if (batch_renew_if_detached(env, r, b, ab) < 0)
		return; /* no replacement: the slot leaves the pool rather than alias JS memory */
	batch_release(r, b);
}

static void tsfn_finalize(napi_env env, void *data, void *hint)
{
	reader *r = data;
	napi_value done, undef;

	for (int i = 0; i < r->npool; i++) {
		if (r->pool[i].ab_ref)
			napi_delete_reference(env, r->pool[i].ab_ref);
		r->pool[i].ab_ref = NULL;
	}
	r->tsfn = NULL;
	if (r->done_ref) {
		if (napi_get_reference_value(env, r->done_ref, &done) == napi_ok && done) {
			napi_get_undefined(env, &undef);
			napi_call_function(env, undef, done, 0, NULL, NULL);
			bool pending = false;
			napi_value exc;
			if (napi_is_exception_pending(env, &pending) == napi_ok && pending)
				napi_get_and_clear_last_exception(env, &exc);
		}
		napi_delete_reference(env, r->done_ref);
		r->done_ref = NULL;
	}
	reader_unref(r);
}

/* Registered after the threadsafe function, so it runs before Node tears that function down. */
static void reader_cleanup_hook(void *arg)
{
	reader *r = arg;

	r->cleanup_hooked = 0;
	reader_stop(r);
}

static reader *get_reader(napi_env env, napi_value v)
{
	napi_valuetype t;
	bool ok = false;
	void *p = NULL;

	if (napi_typeof(env, v, &t) != napi_ok || t != napi_external ||
	    napi_check_object_type_tag(env, v, &READER_TAG, &ok) != napi_ok || !ok ||
	    napi_get_value_external(env, v, &p) != napi_ok || !p) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "expected a ring reader handle");
		return NULL;
	}
	return p;
}

static void reader_handle_finalize(napi_env env, void *data, void *hint)
{
	reader *r = data;

	reader_stop(r);
	reader_unref(r);
}

/* openRingBuffer(h, map, onBatch(ab, byteLength, count), batchBytes, poolSize, timeoutMs) → handle */
static napi_value js_open_ring(napi_env env, napi_callback_info info)
{
	napi_value argv[6], handle, name;
	napi_valuetype t;
	bridge_obj *o;
	struct bpf_map *m;
	uint32_t batch_bytes, npool, timeout;
	reader *r;
	int slot = -1, fd, err;

	if (get_args(env, info, 6, argv) || !(o = get_obj(env, argv[0], 1)) || !(m = find_map(env, o, argv[1])))
		return NULL;
	if (napi_typeof(env, argv[2], &t) != napi_ok || t != napi_function) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "onBatch must be a function");
		return NULL;
	}
	if (get_u32(env, argv[3], &batch_bytes, "batchBytes") || get_u32(env, argv[4], &npool, "poolSize") ||
	    get_u32(env, argv[5], &timeout, "pollTimeoutMs") || require_loaded(env, o, 1))
		return NULL;
	if (batch_bytes < 4096 || batch_bytes > (64u << 20) || (batch_bytes & 7) || npool < 2 || npool > 1024 ||
	    timeout < 1 || timeout > 10000) {
		napi_throw_range_error(env, "ERR_INVALID_ARG_VALUE",
				       "batchBytes must be a multiple of 8 in [4 KiB, 64 MiB], poolSize in [2, 1024], "
				       "pollTimeoutMs in [1, 10000]");
		return NULL;
	}
	if (bpf_map__type(m) != BPF_MAP_TYPE_RINGBUF) {
		napi_throw_error(env, "BPF_MAP_TYPE", "map is not a ring buffer");
		return NULL;
	}
	for (int i = 0; i < MAX_READERS; i++)
		if (!o->readers[i]) {
			slot = i;
			break;
		}
	if (slot < 0) {
		napi_throw_error(env, "BPF_LIMIT", "too many ring readers on this object");
		return NULL;
	}
	fd = bpf_map__fd(m);
	r = calloc(1, sizeof(*r));
	if (!r) {
		napi_throw_error(env, "ENOMEM", "out of memory");
		return NULL;
	}
	pthread_mutex_init(&r->mu, NULL);
	pthread_cond_init(&r->cv, NULL);
	r->wake_fd = -1;
	r->ep_fd = -1;
	r->cur = -1;
	r->batch_bytes = batch_bytes;
	r->timeout_ms = (int)timeout;
	r->npool = (int)npool;
	r->refs = 1; /* the JS handle, below; the tsfn takes the second */
	r->pool = calloc(npool, sizeof(*r->pool));
	r->free_stack = calloc(npool, sizeof(int));
	if (!r->pool || !r->free_stack)
		goto oom;
	for (uint32_t i = 0; i < npool; i++) {
		napi_value ab;
		void *data;
		if (napi_create_arraybuffer(env, batch_bytes, &data, &ab) != napi_ok ||
		    napi_create_reference(env, ab, 1, &r->pool[i].ab_ref) != napi_ok)
			goto fail_pool;
		r->pool[i].data = data;
		r->pool[i].index = (int)i;
		r->free_stack[r->nfree++] = (int)i;
	}
	errno = 0;
	r->rb = ring_buffer__new(fd, on_sample, r, NULL);
	if (r->rb) {
		struct epoll_event ev = { .events = EPOLLIN };
		r->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		r->ep_fd = epoll_create1(EPOLL_CLOEXEC);
		if (r->wake_fd < 0 || r->ep_fd < 0 ||
		    epoll_ctl(r->ep_fd, EPOLL_CTL_ADD, ring_buffer__epoll_fd(r->rb), &ev) ||
		    epoll_ctl(r->ep_fd, EPOLL_CTL_ADD, r->wake_fd, &ev)) {
			err = errno ? errno : EINVAL;
			ring_buffer__free(r->rb);
			r->rb = NULL;
			errno = err;
		}
	}
	if (!r->rb) {
		err = errno ? errno : EINVAL;
		for (uint32_t i = 0; i < npool; i++)
			if (r->pool[i].ab_ref)
				napi_delete_reference(env, r->pool[i].ab_ref);
		r->refs = 1;
		reader_unref(r);
		throw_errno(env, "ring_buffer__new", err);
		return NULL;
	}
	napi_create_string_utf8(env, "kscope.ringbuf", NAPI_AUTO_LENGTH, &name);
	/* queue bound = pool size: every queued item holds a pool buffer, so it can never overflow */
	if (napi_create_threadsafe_function(env, argv[2], NULL, name, npool, 1, r, tsfn_finalize, r, call_js,
					    &r->tsfn) != napi_ok) {
		ring_buffer__free(r->rb);
		for (uint32_t i = 0; i < npool; i++)
			if (r->pool[i].ab_ref)
				napi_delete_reference(env, r->pool[i].ab_ref);
		reader_unref(r);
		return NULL;
	}
	r->refs = 2;
	/* one more acquire for the worker thread; the main thread's is dropped in reader_stop */
	napi_acquire_threadsafe_function(r->tsfn);
	r->owner = o;
	o->readers[slot] = r;
	if (napi_create_external(env, r, reader_handle_finalize, NULL, &handle) != napi_ok) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_release); /* the worker's */
		reader_stop(r);
		reader_unref(r); /* the JS handle's reference: there is no handle */
		return NULL;
	}
	if (napi_type_tag_object(env, handle, &READER_TAG) != napi_ok) {
		/* the external exists: reader_handle_finalize drops the handle's reference later */
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_release); /* the worker's */
		reader_stop(r);
		return NULL;
	}
	err = pthread_create(&r->thread, NULL, reader_main, r);
	if (err) {
		napi_release_threadsafe_function(r->tsfn, napi_tsfn_release);
		reader_stop(r);
		throw_errno(env, "start ring reader thread", err);
		return NULL;
	}
	r->thread_started = 1;
	live_add(r);
	r->env = env;
	if (napi_add_env_cleanup_hook(env, reader_cleanup_hook, r) == napi_ok)
		r->cleanup_hooked = 1;
	return handle;

fail_pool:
	for (uint32_t i = 0; i < npool; i++)
		if (r->pool[i].ab_ref)
			napi_delete_reference(env, r->pool[i].ab_ref);
oom:
	reader_unref(r);
	napi_throw_error(env, "ENOMEM", "cannot allocate ring reader batches");
	return NULL;
}

/* readerStop(r, onDone?): joins the worker; onDone runs after every queued batch was delivered */
static napi_value js_reader_stop(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	napi_valuetype t;
	reader *r;

	if (get_args(env, info, 2, argv) || !(r = get_reader(env, argv[0])))
		return NULL;
	if (napi_typeof(env, argv[1], &t) == napi_ok && t == napi_function) {
		if (r->tsfn && !r->done_ref)
			napi_create_reference(env, argv[1], 1, &r->done_ref);
		else if (!r->tsfn) {
			/* already fully torn down */
			napi_value undef;
			napi_get_undefined(env, &undef);
			napi_call_function(env, undef, argv[1], 0, NULL, NULL);
		}
	}
	reader_stop(r);
	return NULL;
}

/* readerRef(r, on): whether a running reader keeps the event loop alive (default: yes) */
static napi_value js_reader_ref(napi_env env, napi_callback_info info)
{
	napi_value argv[2];
	reader *r;
	bool on;

	if (get_args(env, info, 2, argv) || !(r = get_reader(env, argv[0])))
		return NULL;
	if (napi_get_value_bool(env, argv[1], &on) != napi_ok) {
		napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "ref must be a boolean");
		return NULL;
	}
	if (r->tsfn && !r->stopped) {
		if (on)
			napi_ref_threadsafe_function(env, r->tsfn);
		else
			napi_unref_threadsafe_function(env, r->tsfn);
	}
	return NULL;
}

static napi_value js_reader_stats(napi_env env, napi_callback_info info)
{
	napi_value argv[1], s;
	reader *r;

	if (get_args(env, info, 1, argv) || !(r = get_reader(env, argv[0])))
		return NULL;
	CHECK(napi_create_object(env, &s));
	set_num(env, s, "records", (double)atomic_load(&r->records));
	set_num(env, s, "bytes", (double)atomic_load(&r->bytes));
	set_num(env, s, "batches", (double)atomic_load(&r->batches));
	set_num(env, s, "deliveredBatches", (double)atomic_load(&r->delivered_batches));
	set_num(env, s, "backpressureWaits", (double)atomic_load(&r->waits));
	set_num(env, s, "backpressureNs", (double)atomic_load(&r->wait_ns));
	set_num(env, s, "droppedOnStop", (double)atomic_load(&r->dropped_stopping));
	set_num(env, s, "oversize", (double)atomic_load(&r->oversize));
	set_num(env, s, "pollErrors", (double)atomic_load(&r->poll_errors));
	set_num(env, s, "callbackErrors", (double)atomic_load(&r->callback_errors));
	set_num(env, s, "renewedBuffers", (double)atomic_load(&r->renewed_buffers));
	set_num(env, s, "lostBuffers", (double)atomic_load(&r->lost_buffers));
	set_num(env, s, "poolSize", r->npool);
	set_num(env, s, "batchBytes", r->batch_bytes);
	set_bool(env, s, "running", !r->stopped);
	return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Misc */

/* clocks() → [monotonicNs, realtimeNs] read back to back (the tightest of a few tries) */
static napi_value js_clocks(napi_env env, napi_callback_info info)
{
	struct timespec a, w, b;
	uint64_t best_gap = UINT64_MAX, mono = 0, real = 0;
	napi_value arr, v;

	for (int i = 0; i < 7; i++) {
		clock_gettime(CLOCK_MONOTONIC, &a);
		clock_gettime(CLOCK_REALTIME, &w);
		clock_gettime(CLOCK_MONOTONIC, &b);
		uint64_t an = (uint64_t)a.tv_sec * 1000000000ull + a.tv_nsec;
		uint64_t bn = (uint64_t)b.tv_sec * 1000000000ull + b.tv_nsec;
		if (bn - an < best_gap) {
			best_gap = bn - an;
			mono = an + (bn - an) / 2;
			real = (uint64_t)w.tv_sec * 1000000000ull + w.tv_nsec;
		}
	}
	CHECK(napi_create_array_with_length(env, 2, &arr));
	napi_create_bigint_uint64(env, mono, &v);
	napi_set_element(env, arr, 0, v);
	napi_create_bigint_uint64(env, real, &v);
	napi_set_element(env, arr, 1, v);
	return arr;
}

static napi_value js_libbpf_log(napi_env env, napi_callback_info info)
{
	return log_string(env);
}

static napi_value js_num_possible_cpus(napi_env env, napi_callback_info info)
{
	napi_value v;

	napi_create_int32(env, libbpf_num_possible_cpus(), &v);
	return v;
}

static napi_value init(napi_env env, napi_value exports)
{
	static int once;
	const char *d = getenv("KSCOPE_LIBBPF_DEBUG"), *e = getenv("KSCOPE_LIBBPF_ECHO");
	napi_property_descriptor props[] = {
#define FN(n, f) { n, NULL, f, NULL, NULL, NULL, napi_enumerable, NULL }
		FN("open", js_open),
		FN("close", js_close),
		FN("programs", js_programs),
		FN("maps", js_maps),
		FN("globals", js_globals),
		FN("setGlobal", js_set_global),
		FN("getGlobal", js_get_global),
		FN("setAutoload", js_set_autoload),
		FN("setMaxEntries", js_set_max_entries),
		FN("load", js_load),
		FN("attach", js_attach),
		FN("detach", js_detach),
		FN("mapId", js_map_id),
		FN("mapLookup", js_map_lookup),
		FN("mapUpdate", js_map_update),
		FN("mapDelete", js_map_delete),
		FN("mapEntries", js_map_entries),
		FN("btfStruct", js_btf_struct),
		FN("openRingBuffer", js_open_ring),
		FN("readerStop", js_reader_stop),
		FN("readerStats", js_reader_stats),
		FN("readerRef", js_reader_ref),
		FN("clocks", js_clocks),
		FN("libbpfLog", js_libbpf_log),
		FN("numPossibleCpus", js_num_possible_cpus),
#undef FN
	};

	if (!once) {
		once = 1;
		log_debug = d && *d == '1';
		log_echo = e && *e == '1';
		libbpf_set_print(print_fn);
		atexit(halt_all_at_exit);
	}
	if (napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props) != napi_ok)
		return NULL;
	return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
