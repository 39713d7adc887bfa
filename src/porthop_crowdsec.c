/*
 * porthop-crowdsec: the CrowdSec bouncer.  Pulls the Local API's decision
 * stream and keeps porthopd's runtime watch list (origin "crowdsec") equal
 * to the decisions in force, through porthopd's control socket, or (with
 * fleet_configuration) publishes them to the fleet stream, which every
 * host applies (docs/fleet.md).  What it
 * decides lives in src/lib/bouncer.c; this file owns the HTTP client, the
 * control calls and the loop.
 *
 * One process, one thread, one blocking loop: a pull, a push, a sleep.
 * Every wait has a deadline (curl's and control_call's timeouts, the
 * sleep), and SIGTERM cuts a transfer short through curl's progress
 * callback, so a loop of libevent would add nothing here.
 */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#include "bouncer.h"
#include "config.h"
#include "control.h"
#include "diag.h"
#include "fleetpub.h"
#include "log.h"

/* A control call (a large batch included) may take this long. */
#define CONTROL_TIMEOUT_MS 60000
#define HTTP_CONNECT_TIMEOUT_S 5
#define HTTP_TIMEOUT_S 60
/* The Local API unreachable: wait update_frequency, doubled per failure,
 * up to this long. */
#define BACKOFF_MAX_S 60
/* Even with nothing to push, porthopd's list is compared with the model
 * this often: a porthopd restarted between two pushes (or an operator's
 * `porthop watch flush --origin crowdsec`) is noticed. */
#define SYNC_INTERVAL_S 60

static volatile sig_atomic_t stopping;

struct ctx {
	struct bouncer_config *cfg;
	struct config *fleet;	/* fleet mode: the porthop configuration */
	struct bouncer *model;
	CURL *curl;
	struct curl_slist *headers;
	char *url_startup, *url_stream;
	bool want_startup;	/* the next pull asks for startup=true */
	bool porthopd_down;	/* the last control call failed */
	unsigned lapi_failures;	/* pulls failed in a row */
	bool said_scope, said_type;
	time_t last_sync;
	/* A response being received. */
	char *buf;
	size_t len;
	bool too_big;
};

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: porthop-crowdsec -c FILE [-k KEY_FILE] [-n] [-v]\n"
		"  -c FILE      the configuration (JSON; see porthop-crowdsec(8))\n"
		"  -k KEY_FILE  the API key's file, instead of api_key_file\n"
		"  -n           check the configuration and exit\n"
		"  -v           log debug lines too\n"
		"  -V           print the version\n");
}

static void diag_line_out(void *arg, const char *text)
{
	(void)arg;
	log_warnx("%s", text);
}

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct ctx *x = arg;
	size_t add = size * n;
	char *p;

	if (x->len + add > BOUNCER_STREAM_MAX_SIZE) {
		x->too_big = true;
		return 0;
	}
	p = realloc(x->buf, x->len + add + 1);
	if (p == NULL)
		return 0;
	x->buf = p;
	memcpy(x->buf + x->len, data, add);
	x->len += add;
	x->buf[x->len] = '\0';
	return add;
}

/* A SIGTERM ends a transfer at once. */
static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
		       curl_off_t d)
{
	(void)arg, (void)a, (void)b, (void)c, (void)d;
	return stopping ? 1 : 0;
}

static int http_setup(struct ctx *x)
{
	char *hdr;
	size_t n = strlen(x->cfg->api_url) + 64;

	x->url_startup = malloc(n);
	x->url_stream = malloc(n);
	if (x->url_startup == NULL || x->url_stream == NULL)
		return -1;
	snprintf(x->url_startup, n, "%sv1/decisions/stream?startup=true",
		 x->cfg->api_url);
	snprintf(x->url_stream, n, "%sv1/decisions/stream", x->cfg->api_url);
	if (asprintf(&hdr, "X-Api-Key: %s", x->cfg->api_key) < 0)
		return -1;
	x->headers = curl_slist_append(NULL, hdr);
	explicit_bzero(hdr, strlen(hdr));
	free(hdr);
	x->curl = curl_easy_init();
	if (x->headers == NULL || x->curl == NULL)
		return -1;
	curl_easy_setopt(x->curl, CURLOPT_HTTPHEADER, x->headers);
	curl_easy_setopt(x->curl, CURLOPT_USERAGENT,
			 "porthop-crowdsec/" PORTHOP_VERSION);
	curl_easy_setopt(x->curl, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(x->curl, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(x->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(x->curl, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(x->curl, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(x->curl, CURLOPT_CONNECTTIMEOUT,
			 (long)HTTP_CONNECT_TIMEOUT_S);
	curl_easy_setopt(x->curl, CURLOPT_TIMEOUT, (long)HTTP_TIMEOUT_S);
	/* The key goes to the Local API only: no redirects, no other
	 * protocol than the URL's. */
	curl_easy_setopt(x->curl, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(x->curl, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(x->curl, CURLOPT_ACCEPT_ENCODING, "");
	return 0;
}

/* One GET of the stream; 0 with the body in x->buf, or -1 (logged). */
static int http_get(struct ctx *x, const char *url)
{
	CURLcode rc;
	long status = 0;

	free(x->buf);
	x->buf = NULL;
	x->len = 0;
	x->too_big = false;
	curl_easy_setopt(x->curl, CURLOPT_URL, url);
	rc = curl_easy_perform(x->curl);
	if (stopping)
		return -1;
	if (rc != CURLE_OK) {
		log_warnx("local API %s: %s%s", x->cfg->api_url,
			  curl_easy_strerror(rc), x->too_big ?
			  " (the response is too large)" : "");
		return -1;
	}
	curl_easy_getinfo(x->curl, CURLINFO_RESPONSE_CODE, &status);
	if (status != 200) {
		log_warnx("local API %s: HTTP status %ld%s", x->cfg->api_url,
			  status, status == 403 ? " (is the API key one that "
			  "cscli bouncers add gave?)" : "");
		return -1;
	}
	if (x->buf == NULL && (x->buf = strdup("")) == NULL)
		return -1;
	return 0;
}

/* Pulls the stream and applies it to the model.  0, or -1 when the
 * Local API could not be read (what is in force stays). */
static int pull(struct ctx *x)
{
	bool startup = x->want_startup;
	struct bouncer_stream *s = NULL;
	struct diag *d = diag_new();
	int r = -1;

	if (d == NULL || http_get(x, startup ? x->url_startup :
				  x->url_stream) < 0)
		goto out;
	if (bouncer_stream_parse(x->buf, x->len, x->cfg->types,
				 x->cfg->ntypes, d, &s) < 0) {
		diag_report(d, diag_line_out, NULL);
		goto out;
	}
	diag_report(d, diag_line_out, NULL);
	if (s->other_scope && !x->said_scope) {
		x->said_scope = true;
		log_info("decisions of scopes other than Ip and Range are "
			 "ignored (first: \"%s\"; said once)", s->first_scope);
	}
	if (s->other_type && !x->said_type) {
		x->said_type = true;
		log_info("decisions of types not in decision_types are ignored "
			 "(first: \"%s\"; said once)", s->first_type);
	}
	if (bouncer_apply(x->model, s, startup, time(NULL)) < 0) {
		log_warnx("out of memory applying %zu new and %zu deleted "
			  "decisions", s->nadd, s->ndel);
		goto out;
	}
	if (startup) {
		x->want_startup = false;
		log_info("local API: %zu decisions in force, %zu addresses and "
			 "networks (%zu of other scopes, %zu of other types "
			 "ignored)", bouncer_decision_count(x->model),
			 bouncer_net_count(x->model, time(NULL)),
			 s->other_scope, s->other_type);
	} else if (s->nadd || s->ndel) {
		log_debug("local API: %zu new, %zu deleted decisions", s->nadd,
			  s->ndel);
	}
	r = 0;
out:
	if (r < 0)
		x->lapi_failures++;
	else
		x->lapi_failures = 0;
	bouncer_stream_free(s);
	diag_free(d);
	return r;
}

/* A string's value, or def if v is not a string. */
static const char *str_or(const json_t *v, const char *def)
{
	return json_is_string(v) ? json_string_value(v) : def;
}

/* The first entry's address of a request, for messages. */
static const char *first_address(const json_t *req)
{
	const char *a = json_string_value(json_object_get(
		json_array_get(json_object_get(req, "entries"), 0), "address"));

	return a ? a : "?";
}

/* Sends one request; one that porthopd refuses for its entries is split
 * until the entry it refuses is found, which is dropped (logged): the
 * rest still goes through.  0 when done, -1 when porthopd could not be
 * reached or refused for another reason (the push is tried again). */
/* Fleet mode: the request's entries published as stream operations
 * (every host checks them; nothing is refused here).  0, or -1 (no
 * primary, WAIT short: the push is tried again; publishing twice is
 * harmless). */
static int publish_request(struct ctx *x, const json_t *req)
{
	struct fleet_op *ops = NULL;
	char err[768];
	size_t n = 0;
	int r = fleet_ops_from_request(req, (int64_t)time(NULL), &ops, &n);

	if (r < 0) {
		log_warnx("fleet: a request the fleet cannot carry (%s); "
			  "dropped", strerror(-r));
		return 0;
	}
	r = n ? fleetpub_publish(x->fleet, ops, n, err, sizeof(err)) : 0;
	free(ops);
	if (r == 0) {
		log_debug("fleet: %zu entries published", n);
		return 0;
	}
	if (!x->porthopd_down)
		log_warnx("fleet: %s; trying again every round", err);
	return -1;
}

static int send_request(struct ctx *x, json_t *req, bool is_del)
{
	const char *cmd = is_del ? "watch_del" : "watch_add";
	char ebuf[256];
	json_t *reply = NULL, *a = NULL, *b = NULL;
	const char *code;
	size_t n = json_array_size(json_object_get(req, "entries"));
	int r;

	if (x->fleet)
		return publish_request(x, req);
	r = control_call(x->cfg->control_socket, req, CONTROL_TIMEOUT_MS,
			 &reply);

	if (r < 0) {
		if (!x->porthopd_down)
			log_warnx("porthopd at %s: %s; trying again every "
				  "round", x->cfg->control_socket,
				  strerror(-r));
		return -1;
	}
	if (json_is_true(json_object_get(reply, "ok"))) {
		log_debug("%s: %zu entries", cmd, n);
		json_decref(reply);
		return 0;
	}
	code = str_or(json_object_get(reply, "code"), "");
	diag_line(ebuf, sizeof(ebuf), str_or(json_object_get(reply, "error"),
					      ""));
	r = -1;
	if (is_del && strcmp(code, "not_watched") == 0) {
		r = 0;	/* gone already: done */
	} else if (n >= 2 && (strcmp(code, "invalid") == 0 ||
			      strcmp(code, "not_watched") == 0)) {
		if (bouncer_request_split(req, &a, &b) == 0)
			r = send_request(x, a, is_del) < 0 ||
			    send_request(x, b, is_del) < 0 ? -1 : 0;
	} else if (n == 1 && strcmp(code, "invalid") == 0) {
		log_warnx("porthopd refused %s %s: %s", cmd, first_address(req),
			  ebuf);
		r = 0;
	} else if (!x->porthopd_down) {
		log_warnx("porthopd refused %s (%zu entries): %s: %s; trying "
			  "again every round", cmd, n, code, ebuf);
	}
	json_decref(a);
	json_decref(b);
	json_decref(reply);
	return r;
}

/* Entries in an array of requests. */
static size_t entry_count(const json_t *reqs)
{
	size_t i, n = 0;
	json_t *req;

	json_array_foreach(reqs, i, req)
		n += json_array_size(json_object_get(req, "entries"));
	return n;
}

static int send_all(struct ctx *x, json_t *reqs, bool is_del)
{
	size_t i;
	json_t *req;

	json_array_foreach(reqs, i, req)
		if (send_request(x, req, is_del) < 0)
			return -1;
	return 0;
}

/* Brings porthopd's list to the model: the dirty networks, or (a sync)
 * the difference with porthopd's list of our origin. */
static void push(struct ctx *x)
{
	json_t *add = NULL, *del = NULL, *list = NULL, *req = NULL;
	struct diag *d = diag_new();
	time_t now = time(NULL);
	/* The fleet has no list to compare with: what is dirty is pushed
	 * (everything, after a start-up pull). */
	bool sync = x->fleet == NULL && (bouncer_sync_wanted(x->model) ||
					 now - x->last_sync >= SYNC_INTERVAL_S);
	int r;

	if (d == NULL || (!sync && !bouncer_pending(x->model)))
		goto out;
	if (sync) {
		req = bouncer_list_request(x->cfg->origin);
		r = req ? control_call(x->cfg->control_socket, req,
				       CONTROL_TIMEOUT_MS, &list) : -ENOMEM;
		if (r < 0) {
			if (!x->porthopd_down)
				log_warnx("porthopd at %s: %s; trying again "
					  "every round", x->cfg->control_socket,
					  strerror(-r));
			goto fail;
		}
		if (!json_is_true(json_object_get(list, "ok"))) {
			if (!x->porthopd_down)
				log_warnx("porthopd refused watch_list: %s",
					  str_or(json_object_get(list, "code"),
						 "?"));
			goto fail;
		}
		r = bouncer_sync_requests(x->model, list, now, d, &add, &del);
		diag_report(d, diag_line_out, NULL);
		if (r < 0)
			goto fail;
		if (json_array_size(add) || json_array_size(del) ||
		    bouncer_sync_wanted(x->model))
			log_info("sync with porthopd: %zu entries listed, %zu "
				 "addresses and networks in force; %zu to add or "
				 "refresh, %zu to delete",
				 json_array_size(json_object_get(list, "entries")),
				 bouncer_net_count(x->model, now),
				 entry_count(add), entry_count(del));
	} else if (bouncer_push_requests(x->model, now, &add, &del) < 0) {
		goto fail;
	}
	/* Additions first: a network never goes unwatched between the
	 * two. */
	if (send_all(x, add, false) < 0 || send_all(x, del, true) < 0)
		goto fail;
	bouncer_pushed(x->model);
	if (sync)
		x->last_sync = now;
	if (x->porthopd_down) {
		/* porthopd is back (restarted perhaps, its state file
		 * older than the model): the next pull starts over. */
		log_info("porthopd answers again; the next pull asks for "
			 "every decision in force");
		x->porthopd_down = false;
		x->want_startup = true;
	}
	goto out;
fail:
	x->porthopd_down = true;
	bouncer_want_sync(x->model);
out:
	json_decref(req);
	json_decref(list);
	json_decref(add);
	json_decref(del);
	diag_free(d);
}

/* Sleeps s seconds, less if a signal comes. */
static void pause_for(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (!stopping && nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The wait before the next round: update_frequency, or a backoff with
 * jitter while the Local API fails (many bouncers restarted with it must
 * not come back in step). */
static unsigned next_wait_ms(const struct ctx *x)
{
	unsigned base = (unsigned)x->cfg->update_frequency * 1000, max, ms;
	unsigned shift = x->lapi_failures > 6 ? 6 : x->lapi_failures;
	uint16_t rnd = 0;

	if (x->lapi_failures == 0)
		return base;
	max = base > BACKOFF_MAX_S * 1000 ? base : BACKOFF_MAX_S * 1000;
	ms = base << shift;
	ms = ms > max ? max : ms;
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) != sizeof(rnd))
		rnd = (uint16_t)getpid();
	return ms - ms / 4 + (unsigned)(rnd % (ms / 4 + 1));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "key-file", required_argument, NULL, 'k' },
		{ "check", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa = { .sa_handler = on_signal };
	const char *file = NULL, *key_file = NULL;
	struct ctx x = { .want_startup = true };
	struct diag *d;
	bool check = false;
	int ch, verbose = 0, status = EXIT_SUCCESS;

	while ((ch = getopt_long(argc, argv, "c:k:nvVh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c': file = optarg; break;
		case 'k': key_file = optarg; break;
		case 'n': check = true; break;
		case 'v': verbose++; break;
		case 'V': printf("porthop-crowdsec %s\n", PORTHOP_VERSION);
			return EXIT_SUCCESS;
		case 'h': usage(stdout); return EXIT_SUCCESS;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (file == NULL || optind != argc) {
		usage(stderr);
		return EX_USAGE;
	}
	log_init("porthop-crowdsec", verbose, false);
	d = diag_new();
	if (d == NULL)
		fatalx(EX_OSERR, "out of memory");
	x.cfg = bouncer_config_load(file, key_file, d);
	diag_report(d, diag_line_out, NULL);
	diag_free(d);
	if (x.cfg == NULL)
		return EX_CONFIG;
	if (x.cfg->fleet_configuration) {
		d = diag_new();
		x.fleet = d ? config_load(x.cfg->fleet_configuration,
					  CONFIG_LOAD_NO_RULES, d) : NULL;
		if (d)
			diag_report(d, diag_line_out, NULL);
		diag_free(d);
		if (x.fleet && config_stream(x.fleet)->stream == NULL) {
			log_warnx("%s: fleet_configuration: %s has no "
				  "redis_stream_configuration; expected one for "
				  "the fleet stream", file,
				  x.cfg->fleet_configuration);
			config_free(x.fleet);
			x.fleet = NULL;
		}
		if (x.fleet == NULL || strlen(x.cfg->origin) > FLEET_ORIGIN_MAX) {
			if (x.fleet)
				log_warnx("%s: origin: %s is too long for the "
					  "fleet; expected at most %d characters",
					  file, x.cfg->origin, FLEET_ORIGIN_MAX);
			config_free(x.fleet);
			bouncer_config_free(x.cfg);
			return EX_CONFIG;
		}
	}
	if (check) {
		config_free(x.fleet);
		bouncer_config_free(x.cfg);
		return EXIT_SUCCESS;
	}
	if (getuid() == 0 || geteuid() == 0)
		log_warnx("running as root: the bouncer needs only to reach "
			  "porthopd's control socket (its control_group) and "
			  "the local API; see porthop-crowdsec(8)");
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) < 0 ||
	    sigaction(SIGINT, &sa, NULL) < 0 ||
	    signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		fatal(EX_OSERR, "sigaction");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		fatalx(EX_OSERR, "cannot initialise libcurl");
	x.model = bouncer_new(x.cfg->origin, x.cfg->max_ttl);
	if (x.model == NULL || http_setup(&x) < 0)
		fatalx(EX_OSERR, "out of memory");
	log_info("started: local API %s every %d s, %s %s, origin \"%s\"",
		 x.cfg->api_url, x.cfg->update_frequency,
		 x.fleet ? "the fleet stream of" : "porthopd at",
		 x.fleet ? x.cfg->fleet_configuration : x.cfg->control_socket,
		 x.cfg->origin);
	while (!stopping) {
		/* A failed pull leaves the model as it was: what is in
		 * force stays in force, and a dirty push is still worth
		 * trying. */
		if (pull(&x) == 0 || bouncer_pending(x.model))
			push(&x);
		if (x.lapi_failures == 1 || x.lapi_failures == 7)
			log_info("local API unreachable: retrying with backoff "
				 "(up to %d s)", BACKOFF_MAX_S);
		pause_for(next_wait_ms(&x));
	}
	log_info("stopping; porthopd keeps the entries in force (until "
		 "their TTL)");
	curl_easy_cleanup(x.curl);
	curl_slist_free_all(x.headers);
	curl_global_cleanup();
	free(x.buf);
	free(x.url_startup);
	free(x.url_stream);
	bouncer_free(x.model);
	config_free(x.fleet);
	bouncer_config_free(x.cfg);
	return status;
}
