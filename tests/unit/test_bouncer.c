/* The CrowdSec bouncer's decisions: Go durations, the stream, the model,
 * the requests it builds, the startup sync's difference and the
 * configuration's errors. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "bouncer.h"

static char *const ban[] = { (char *)"ban" };

static void test_durations(void **state)
{
	static const struct {
		const char *s;
		int64_t ns;
	} ok[] = {
		{ "0", 0 }, { "59.7s", 59700000000LL },
		{ "3h59m58.3s", (3 * 3600 + 59 * 60 + 58) * 1000000000LL +
				300000000LL },
		{ "1h", 3600000000000LL }, { "1.5h", 5400000000000LL },
		{ "250ms", 250000000LL }, { "-10.081107ms", -10081107LL },
		{ "1m0.000000001s", 60000000001LL }, { "3us", 3000 },
		{ "3\xc2\xb5s", 3000 }, { "7ns", 7 }, { ".5s", 500000000 },
		{ "59.49182713s", 59491827130LL },
		{ "1h59m59.491824626s", 7199491824626LL },
	};
	static const char *const bad[] = {
		"", "s", "5", "5x", "1.h5", "--1s", "1s ", " 1s", "1e3s",
		"1hh", ".s", "+",
	};
	int64_t ns;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		assert_int_equal(bouncer_duration_parse(ok[i].s, &ns), 0);
		assert_true(ns == ok[i].ns);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(bouncer_duration_parse(bad[i], &ns), -EINVAL);
	assert_int_equal(bouncer_duration_parse("2562047h", &ns), 0);
	assert_int_equal(bouncer_duration_parse("2562048h1h", &ns), -ERANGE);
	assert_int_equal(bouncer_duration_parse("99999999999999999999s", &ns),
			 -ERANGE);
	/* Rounded up: never shorter than the Local API says. */
	assert_int_equal(bouncer_duration_seconds(59700000000LL), 60);
	assert_int_equal(bouncer_duration_seconds(60000000000LL), 60);
	assert_int_equal(bouncer_duration_seconds(1), 1);
	assert_int_equal(bouncer_duration_seconds(0), 0);
	assert_true(bouncer_duration_seconds(-10081107LL) <= 0);
}

static struct bouncer_stream *parse(const char *text, struct diag *d)
{
	struct bouncer_stream *s = NULL;

	assert_int_equal(bouncer_stream_parse(text, strlen(text), ban, 1, d,
					      &s), 0);
	return s;
}

static void test_stream(void **state)
{
	struct diag *d = diag_new();
	struct bouncer_stream *s;

	(void)state;
	s = parse("{\"deleted\":null,\"new\":["
		  "{\"duration\":\"59.49s\",\"id\":1,\"origin\":\"cscli\","
		  "\"scope\":\"Ip\",\"type\":\"ban\",\"value\":\"10.9.0.5\"},"
		  "{\"duration\":\"59.4s\",\"id\":3,\"scope\":\"Ip\","
		  "\"type\":\"captcha\",\"value\":\"10.9.0.6\"},"
		  "{\"duration\":\"1h59m59.49s\",\"id\":2,\"scope\":\"Range\","
		  "\"type\":\"ban\",\"value\":\"10.8.0.0/24\"},"
		  "{\"duration\":\"1h\",\"id\":4,\"scope\":\"Country\","
		  "\"type\":\"ban\",\"value\":\"FR\"},"
		  "{\"duration\":\"1h\",\"id\":5,\"scope\":\"range\","
		  "\"type\":\"ban\",\"value\":\"2001:db8::7/48\"},"
		  "{\"duration\":\"-1ms\",\"id\":6,\"scope\":\"Ip\","
		  "\"type\":\"ban\",\"value\":\"10.9.0.9\"},"
		  "{\"duration\":\"1h\",\"scope\":\"Ip\","
		  "\"type\":\"ban\",\"value\":\"10.9.0.10\"},"
		  "{\"duration\":\"1h\",\"id\":7,\"scope\":\"Ip\","
		  "\"type\":\"ban\",\"value\":\"not\\nan address\"},"
		  "{\"duration\":\"soon\",\"id\":8,\"scope\":\"Ip\","
		  "\"type\":\"ban\",\"value\":\"10.9.0.11\"},"
		  "{\"duration\":\"1h\",\"id\":9,\"scope\":\"Ip\","
		  "\"type\":\"ban\",\"value\":\"10.9.0.0/24\"},"
		  "42]}", d);
	assert_int_equal(s->nadd, 3);
	assert_string_equal(s->add[0].net.text, "10.9.0.5");
	assert_int_equal(s->add[0].ttl, 60);
	assert_int_equal(s->add[0].id, 1);
	assert_string_equal(s->add[1].net.text, "10.8.0.0/24");
	assert_int_equal(s->add[1].ttl, 7200);
	/* A range with host bits set is its network. */
	assert_string_equal(s->add[2].net.text, "2001:db8::/48");
	assert_int_equal(s->ndel, 0);
	assert_int_equal(s->other_scope, 1);
	assert_string_equal(s->first_scope, "Country");
	assert_int_equal(s->other_type, 1);
	assert_string_equal(s->first_type, "captcha");
	assert_int_equal(s->expired, 1);
	/* No id, a bad value (an Ip scope with a prefix too), a bad
	 * duration, not an object. */
	assert_int_equal(s->malformed, 5);
	assert_int_equal(diag_errors(d), 0);
	assert_int_equal(diag_count(d), 5);
	/* Outside values are JSON-encoded: no forged line. */
	for (size_t i = 0; i < diag_count(d); i++)
		assert_null(strchr(diag_message(d, i, NULL), '\n'));
	bouncer_stream_free(s);
	diag_clear(d);

	s = parse("{\"new\":null,\"deleted\":[{\"duration\":\"-10ms\","
		  "\"id\":1,\"scope\":\"Ip\",\"type\":\"ban\","
		  "\"value\":\"10.9.0.5\"}]}", d);
	assert_int_equal(s->nadd, 0);
	assert_int_equal(s->ndel, 1);
	assert_string_equal(s->del[0].net.text, "10.9.0.5");
	bouncer_stream_free(s);
	s = parse("{}", d);
	assert_int_equal(s->nadd + s->ndel, 0);
	bouncer_stream_free(s);
	assert_int_equal(diag_count(d), 0);

	static const char *const bad[] = {
		"", "[]", "{\"new\":{}}", "{\"deleted\":3}", "{\"new\":[",
		"null",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		s = NULL;
		assert_int_equal(bouncer_stream_parse(bad[i], strlen(bad[i]),
						      ban, 1, d, &s), -EINVAL);
		assert_null(s);
	}
	assert_int_equal(diag_errors(d), sizeof(bad) / sizeof(bad[0]));
	diag_free(d);
}

/* A stream with one decision. */
static struct bouncer_stream *one(bool is_new, const char *scope,
				  const char *value, int id, const char *dur)
{
	char text[512];
	struct bouncer_stream *s;
	struct diag *d = diag_new();

	snprintf(text, sizeof(text), "{\"%s\":[{\"duration\":\"%s\","
		 "\"id\":%d,\"scope\":\"%s\",\"type\":\"ban\","
		 "\"value\":\"%s\"}]}", is_new ? "new" : "deleted", dur, id,
		 scope, value);
	s = parse(text, d);
	assert_int_equal(diag_count(d), 0);
	diag_free(d);
	return s;
}

static void apply(struct bouncer *b, struct bouncer_stream *s, bool startup,
		  int64_t now)
{
	assert_int_equal(bouncer_apply(b, s, startup, now), 0);
	bouncer_stream_free(s);
}

/* The requests of a push as one compact text: "add" requests, then
 * "del" requests. */
static char *push_text(struct bouncer *b, int64_t now)
{
	json_t *add = NULL, *del = NULL, *all;
	char *text;

	assert_int_equal(bouncer_push_requests(b, now, &add, &del), 0);
	all = json_pack("{s:o,s:o}", "add", add, "del", del);
	text = json_dumps(all, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(all);
	return text;
}

static void assert_push(struct bouncer *b, int64_t now, const char *want)
{
	char *text = push_text(b, now);

	assert_string_equal(text, want);
	free(text);
}

static void test_model(void **state)
{
	struct bouncer *b = bouncer_new("crowdsec", 31536000);
	int64_t t = 1000000;

	(void)state;
	assert_false(bouncer_pending(b));
	/* Startup: the model is the stream; a sync is wanted, no push. */
	apply(b, one(true, "Ip", "10.9.0.5", 1, "59.7s"), true, t);
	assert_true(bouncer_sync_wanted(b));
	assert_push(b, t, "{\"add\":[],\"del\":[]}");
	bouncer_pushed(b);
	assert_false(bouncer_pending(b));

	/* A second ban of the same address, longer: one entry, the
	 * longer TTL. */
	apply(b, one(true, "Ip", "10.9.0.5", 2, "2h"), false, t + 10);
	assert_true(bouncer_pending(b));
	assert_false(bouncer_sync_wanted(b));
	assert_push(b, t + 10, "{\"add\":[{\"command\":\"watch_add\","
		    "\"origin\":\"crowdsec\",\"entries\":[{\"address\":"
		    "\"10.9.0.5\",\"ttl\":7200}]}],\"del\":[]}");
	bouncer_pushed(b);
	assert_int_equal(bouncer_decision_count(b), 2);
	assert_int_equal(bouncer_net_count(b, t + 10), 1);

	/* The longer one deleted: the address stays, with the other's
	 * remaining time; a failed push is recomputed later, not
	 * replayed. */
	apply(b, one(false, "Ip", "10.9.0.5", 2, "-1ms"), false, t + 20);
	assert_push(b, t + 20, "{\"add\":[{\"command\":\"watch_add\","
		    "\"origin\":\"crowdsec\",\"entries\":[{\"address\":"
		    "\"10.9.0.5\",\"ttl\":40}]}],\"del\":[]}");
	assert_push(b, t + 30, "{\"add\":[{\"command\":\"watch_add\","
		    "\"origin\":\"crowdsec\",\"entries\":[{\"address\":"
		    "\"10.9.0.5\",\"ttl\":30}]}],\"del\":[]}");
	/* Once the other has expired too, the retry deletes. */
	assert_push(b, t + 61, "{\"add\":[],\"del\":[{\"command\":"
		    "\"watch_del\",\"origin\":\"crowdsec\",\"entries\":"
		    "[{\"address\":\"10.9.0.5\"}]}]}");
	bouncer_pushed(b);

	/* A deletion of a decision the model never saw still deletes
	 * (porthopd answers not_watched if it has nothing). */
	apply(b, one(false, "Range", "10.8.0.0/24", 9, "-1s"), false, t + 70);
	assert_push(b, t + 70, "{\"add\":[],\"del\":[{\"command\":"
		    "\"watch_del\",\"origin\":\"crowdsec\",\"entries\":"
		    "[{\"address\":\"10.8.0.0/24\"}]}]}");
	bouncer_pushed(b);

	/* Longer than max_ttl: no TTL. */
	apply(b, one(true, "Ip", "2001:db8::1", 10, "87600h"), false, t + 80);
	assert_push(b, t + 80, "{\"add\":[{\"command\":\"watch_add\","
		    "\"origin\":\"crowdsec\",\"entries\":[{\"address\":"
		    "\"2001:db8::1\"}]}],\"del\":[]}");
	bouncer_pushed(b);

	/* A new startup replaces the model whole. */
	apply(b, one(true, "Ip", "10.1.1.1", 11, "1m"), true, t + 90);
	assert_int_equal(bouncer_decision_count(b), 1);
	assert_true(bouncer_sync_wanted(b));
	bouncer_free(b);
	bouncer_free(NULL);
}

static void test_batches(void **state)
{
	struct bouncer *b = bouncer_new("crowdsec", 31536000);
	size_t n = BOUNCER_BATCH_MAX + 10;
	struct bouncer_stream s = { 0 };
	json_t *add, *del, *x, *y;
	char *text;

	(void)state;
	s.add = calloc(n, sizeof(*s.add));
	s.nadd = n;
	for (size_t i = 0; i < n; i++) {
		char a[32];

		snprintf(a, sizeof(a), "10.%zu.%zu.%zu", i >> 16,
			 (i >> 8) & 255, i & 255);
		assert_int_equal(config_parse_net(a, false, &s.add[i].net), 0);
		s.add[i].id = (int64_t)i;
		s.add[i].ttl = 60;
	}
	assert_int_equal(bouncer_apply(b, &s, false, 1000), 0);
	assert_int_equal(bouncer_push_requests(b, 1000, &add, &del), 0);
	assert_int_equal(json_array_size(add), 2);
	assert_int_equal(json_array_size(json_object_get(json_array_get(add, 0),
							 "entries")),
			 BOUNCER_BATCH_MAX);
	assert_int_equal(json_array_size(json_object_get(json_array_get(add, 1),
							 "entries")), 10);
	/* porthopd reads a large request only when its line starts so,
	 * and control_call dumps with JSON_COMPACT alone. */
	text = json_dumps(json_array_get(add, 1), JSON_COMPACT);
	assert_memory_equal(text, "{\"command\":\"watch_add\"", 22);
	free(text);

	/* Bisection halves. */
	assert_int_equal(bouncer_request_split(json_array_get(add, 1), &x, &y),
			 0);
	assert_int_equal(json_array_size(json_object_get(x, "entries")), 5);
	assert_int_equal(json_array_size(json_object_get(y, "entries")), 5);
	text = json_dumps(y, JSON_COMPACT);
	assert_memory_equal(text, "{\"command\":\"watch_add\",\"origin\":"
			    "\"crowdsec\",\"entries\":", 50);
	free(text);
	json_decref(x);
	x = json_pack("{s:s,s:[{s:s}]}", "command", "watch_del", "entries",
		      "address", "1.2.3.4");
	assert_int_equal(bouncer_request_split(x, &y, &y), -EINVAL);
	json_decref(x);
	json_decref(y);
	json_decref(add);
	json_decref(del);
	free(s.add);
	bouncer_free(b);
}

static void test_sync(void **state)
{
	struct bouncer *b = bouncer_new("crowdsec", 31536000);
	struct bouncer_stream s = { 0 };
	struct diag *d = diag_new();
	json_t *list, *add, *del;
	char *text;
	int64_t t = 5000;

	(void)state;
	s.add = calloc(3, sizeof(*s.add));
	s.nadd = 3;
	config_parse_net("10.9.0.5", false, &s.add[0].net);
	config_parse_net("10.8.0.0/24", true, &s.add[1].net);
	config_parse_net("10.9.0.7", false, &s.add[2].net);
	for (int i = 0; i < 3; i++) {
		s.add[i].id = i + 1;
		s.add[i].ttl = 600;
	}
	assert_int_equal(bouncer_apply(b, &s, true, t), 0);
	/* porthopd holds 10.9.0.5 current, 10.8.0.0/24 with a stale TTL,
	 * 10.1.0.1 (gone from the Local API), another origin's entry, and
	 * one it cannot have written. */
	list = json_loads("{\"ok\":true,\"entries\":["
		"{\"address\":\"10.9.0.5\",\"origin\":\"crowdsec\","
		"\"expires\":5601,\"ttl_left\":601},"
		"{\"address\":\"10.8.0.0/24\",\"origin\":\"crowdsec\","
		"\"expires\":5100,\"ttl_left\":100},"
		"{\"address\":\"10.1.0.1\",\"origin\":\"crowdsec\","
		"\"expires\":null,\"ttl_left\":null},"
		"{\"address\":\"10.1.0.2\",\"origin\":\"fail2ban\","
		"\"expires\":null,\"ttl_left\":null},"
		"{\"address\":\"bogus\",\"origin\":\"crowdsec\"}]}", 0, NULL);
	assert_non_null(list);
	assert_int_equal(bouncer_sync_requests(b, list, t, d, &add, &del), 0);
	assert_int_equal(diag_count(d), 1);
	assert_int_equal(diag_errors(d), 0);
	text = json_dumps(add, JSON_COMPACT);
	assert_string_equal(text, "[{\"command\":\"watch_add\",\"origin\":"
			    "\"crowdsec\",\"entries\":[{\"address\":"
			    "\"10.8.0.0/24\",\"ttl\":600},{\"address\":"
			    "\"10.9.0.7\",\"ttl\":600}]}]");
	free(text);
	text = json_dumps(del, JSON_COMPACT);
	assert_string_equal(text, "[{\"command\":\"watch_del\",\"origin\":"
			    "\"crowdsec\",\"entries\":[{\"address\":"
			    "\"10.1.0.1\"}]}]");
	free(text);
	json_decref(add);
	json_decref(del);
	json_decref(list);

	/* Converged: nothing to send. */
	list = json_loads("{\"ok\":true,\"entries\":["
		"{\"address\":\"10.9.0.5/32\",\"origin\":\"crowdsec\","
		"\"expires\":5600},{\"address\":\"10.9.0.7\",\"origin\":"
		"\"crowdsec\",\"expires\":5599},{\"address\":\"10.8.0.0/24\","
		"\"origin\":\"crowdsec\",\"expires\":5602}]}", 0, NULL);
	assert_int_equal(bouncer_sync_requests(b, list, t, d, &add, &del), 0);
	assert_int_equal(json_array_size(add) + json_array_size(del), 0);
	json_decref(add);
	json_decref(del);
	json_decref(list);

	list = json_loads("{\"ok\":true}", 0, NULL);
	assert_int_equal(bouncer_sync_requests(b, list, t, d, &add, &del),
			 -EINVAL);
	json_decref(list);
	list = bouncer_list_request("crowdsec");
	text = json_dumps(list, JSON_COMPACT);
	assert_string_equal(text, "{\"command\":\"watch_list\",\"origin\":"
			    "\"crowdsec\"}");
	free(text);
	json_decref(list);
	free(s.add);
	diag_free(d);
	bouncer_free(b);
}

/* Writes text to a file in dir, with mode. */
static void write_file(const char *path, const char *text, mode_t mode)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

/* Loads a configuration text; returns the configuration (or NULL) and
 * leaves the messages in d. */
static struct bouncer_config *load(const char *dir, const char *text,
				   struct diag *d)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/crowdsec.json", dir);
	write_file(path, text, 0600);
	return bouncer_config_load(path, NULL, d);
}

static void test_config(void **state)
{
	char dir[] = "/tmp/test_bouncer.XXXXXX", key[300], text[1024];
	struct bouncer_config *c;
	struct diag *d = diag_new();

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(key, sizeof(key), "%s/key", dir);
	write_file(key, "0123456789abcdef\n", 0600);

	snprintf(text, sizeof(text), "{\"api_url\":\"http://127.0.0.1:8080\","
		 "\"api_key_file\":\"%s\"}", key);
	c = load(dir, text, d);
	assert_non_null(c);
	assert_string_equal(c->api_url, "http://127.0.0.1:8080/");
	assert_string_equal(c->api_key, "0123456789abcdef");
	assert_int_equal(c->update_frequency, 10);
	assert_int_equal(c->ntypes, 1);
	assert_string_equal(c->types[0], "ban");
	assert_string_equal(c->control_socket, "/run/porthop/porthopd.sock");
	assert_string_equal(c->origin, "crowdsec");
	assert_null(c->fleet_configuration);
	bouncer_config_free(c);

	/* Every error in one run, each naming file, path and value. */
	c = load(dir, "{\"api_url\":\"ftp://x\",\"update_frequency_seconds\":0,"
		 "\"decision_types\":[\"ban\",\"ban\",7],\"origin\":\"Crowd Sec\","
		 "\"control_socket\":\"run/x\",\"color\":1,"
		 "\"fleet_configuration\":\"etc/c.json\"}", d);
	assert_null(c);
	assert_int_equal(diag_errors(d), 9);
	{
		static const char *const want[] = {
			"\"color\": unknown key",
			"api_url: \"ftp://x\" is not a URL",
			"api_key_file: is missing",
			("update_frequency_seconds: 0 is out of range; "
			 "expected an integer from 1 to 3600"),
			"decision_types[1]: \"ban\" is repeated",
			"decision_types[2]: 7 is not a decision type",
			"control_socket: \"run/x\" is relative",
			"fleet_configuration: \"etc/c.json\" is relative",
			"origin: \"Crowd Sec\" is not an origin name",
		};
		for (size_t i = 0; i < 9; i++) {
			const char *m = diag_message(d, i, NULL);

			assert_non_null(strstr(m, "crowdsec.json: "));
			if (strstr(m, want[i]) == NULL)
				fail_msg("message %zu: %s; wanted %s", i, m,
					 want[i]);
		}
	}
	diag_clear(d);

	/* A key readable by others is refused; an empty one too. */
	write_file(key, "0123456789abcdef\n", 0644);
	snprintf(text, sizeof(text), "{\"api_url\":\"http://127.0.0.1:8080/\","
		 "\"api_key_file\":\"%s\"}", key);
	assert_null(load(dir, text, d));
	assert_non_null(strstr(diag_first_error(d), "has mode 0644"));
	diag_clear(d);
	write_file(key, "\n", 0640);
	assert_null(load(dir, text, d));
	assert_non_null(strstr(diag_first_error(d), "does not hold a key"));
	diag_clear(d);
	write_file(key, "abc def\n", 0600);
	assert_null(load(dir, text, d));
	diag_clear(d);
	/* -k replaces api_key_file. */
	write_file(key, "k3y\n", 0400);
	snprintf(text, sizeof(text), "%s/crowdsec.json", dir);
	write_file(text, "{\"api_url\":\"https://lapi.example:8080/x/\"}",
		   0600);
	c = bouncer_config_load(text, key, d);
	assert_non_null(c);
	assert_string_equal(c->api_key, "k3y");
	assert_string_equal(c->api_url, "https://lapi.example:8080/x/");
	bouncer_config_free(c);
	bouncer_config_free(NULL);

	unlink(text);
	unlink(key);
	rmdir(dir);
	diag_free(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations),
		cmocka_unit_test(test_stream),
		cmocka_unit_test(test_model),
		cmocka_unit_test(test_batches),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_config),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
