/*
 * nlfloor: the floor for a native reshuffle.  Replaces the contents of
 * porthop's swap4 map with `addresses x ports` pairs (two elements each,
 * as porthopd does) in one netlink batch built with libnftnl's own objects
 * and sent in one transaction, and prints how long that took.  The table
 * must exist (porthopd made it).
 *
 *   nlfloor TABLE ADDRESSES PORTS
 *
 * Addresses are 10.a.b.c from 10.0.0.1 on, ports 1..PORTS, redirects
 * PORTS+1.., as the benchmark's configurations have them.
 *
 *   nlfloor TABLE ADDRESSES PORTS FIRST REPEAT
 *
 * The floor for adding watched addresses to a map that holds others
 * (bench/watch.sh): no flush; the elements of ADDRESSES addresses from the
 * FIRST-th on added in one transaction (timed), then deleted in another
 * (not timed), REPEAT times; each add's milliseconds printed.
 *
 *   nlfloor TABLE 0 PORTS FIRST RATE SECONDS START_MS SYNCFILE
 *
 * The floor of one fleet host (bench/fleet.sh): operations due at
 * START_MS (epoch ms) + i / RATE s, for SECONDS; in a loop, every
 * operation due by now (one address each, from the FIRST-th on) added in
 * one transaction, then one line written to SYNCFILE and fdatasync'ed
 * (the least a host with durable state does per batch), as a consumer
 * that never waits for anything else.  SYNCFILE "-": no file, no
 * fdatasync (what a design whose durable write never delays the kernel
 * change could reach).  Prints each operation's delay from its due time
 * to its transaction's end, in ms, one a line.
 *
 *   nlfloor TABLE 0 PORTS stream HOST PORT STREAM GROUP N SYNCFILE FIRST
 *
 * The floor of one fleet host that reads the stream (bench/fleet.sh): as
 * above, but the operations are the fleet stream's entries, read through
 * consumer group GROUP (made by the caller) on Redis at HOST:PORT, 256 a
 * read: each read's entries added in one transaction (addresses from the
 * FIRST-th on; the entries are not decoded, nor their signatures
 * checked), SYNCFILE written and fdatasync'ed ("-": not), then one XACK
 * for them; N entries, or until a read waits 5 s in vain.  Prints each
 * entry's "ID DELAY_MS", the delay from its XADD (its ID's time) to its
 * transaction's end; then, on standard error, "cpu SECONDS": its CPU
 * time (user + system).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <hiredis/hiredis.h>
#include <libmnl/libmnl.h>
#include <libnftnl/batch.h>
#include <libnftnl/common.h>
#include <libnftnl/set.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static void key(uint32_t addr, uint16_t port, uint8_t out[12])
{
	uint32_t a = htonl(addr);
	uint16_t p = htons(port);

	memset(out, 0, 12);
	memcpy(out, &a, 4);
	out[4] = IPPROTO_TCP;
	memcpy(out + 8, &p, 2);
}

static uint32_t nth_address(unsigned long i)
{
	/* Same order as bench/reshuffle.sh writes them. */
	return (10u << 24) | (uint32_t)(i / 250 / 250 % 250) << 16 |
	       (uint32_t)(i / 250 % 250) << 8 | (uint32_t)(i % 250 + 1);
}

enum batch_kind { REPLACE, ADD, DEL };

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 +
	       (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* One transaction on table's swap4: REPLACE flushes it and adds the
 * elements of naddr addresses from the first-th on, ADD adds them, DEL
 * deletes them.  Returns its milliseconds, or -1. */
static double batch(struct mnl_socket *nl, const char *table,
		    unsigned long first, unsigned long naddr,
		    unsigned long nports, enum batch_kind kind)
{
	static uint32_t seq;
	struct timespec t0;
	struct nftnl_batch *batch;
	struct nftnl_set *set;
	struct nlmsghdr *nlh;
	unsigned long msgs = 0;
	char buf[MNL_SOCKET_BUFFER_SIZE];
	int err = 0;

	if (seq == 0)
		seq = (uint32_t)time(NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	batch = nftnl_batch_alloc(1 << 20, 1 << 20);
	nftnl_batch_begin(nftnl_batch_buffer(batch), seq++);
	nftnl_batch_update(batch);

	set = nftnl_set_alloc();
	nftnl_set_set_str(set, NFTNL_SET_TABLE, table);
	nftnl_set_set_str(set, NFTNL_SET_NAME, "swap4");
	if (kind == REPLACE) {
		/* Flush the map. */
		nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(batch),
					    NFT_MSG_DELSETELEM, NFPROTO_INET,
					    NLM_F_ACK, seq++);
		nftnl_set_elems_nlmsg_build_payload(nlh, set);
		nftnl_batch_update(batch);
		msgs++;
	}

	for (unsigned long a = first; a < first + naddr; a++)
		for (unsigned long p = 1; p <= nports; p++) {
			struct nftnl_set_elem *e;
			uint8_t k[12];
			uint16_t v;

			for (int dir = 0; dir < 2; dir++) {
				e = nftnl_set_elem_alloc();
				key(nth_address(a), (uint16_t)(dir ? nports + p : p), k);
				v = htons((uint16_t)(dir ? p : nports + p));
				nftnl_set_elem_set(e, NFTNL_SET_ELEM_KEY, k, sizeof(k));
				if (kind != DEL)
					nftnl_set_elem_set(e, NFTNL_SET_ELEM_DATA,
							   &v, sizeof(v));
				nftnl_set_elem_add(set, e);
			}
		}
	{
		struct nftnl_set_elems_iter *it = nftnl_set_elems_iter_create(set);

		/* As nftables' own mnl.c: the return value tells whether
		 * elements are left for another message. */
		for (;;) {
			int more;

			nlh = nftnl_nlmsg_build_hdr(nftnl_batch_buffer(batch),
						    kind == DEL ? NFT_MSG_DELSETELEM :
						    NFT_MSG_NEWSETELEM, NFPROTO_INET,
						    kind == DEL ? NLM_F_ACK :
						    NLM_F_CREATE | NLM_F_ACK, seq++);
			more = nftnl_set_elems_nlmsg_build_payload_iter(nlh, it);
			nftnl_batch_update(batch);
			msgs++;
			if (more <= 0)
				break;
		}
		nftnl_set_elems_iter_destroy(it);
	}
	nftnl_batch_end(nftnl_batch_buffer(batch), seq++);
	nftnl_batch_update(batch);
	{
		int iovlen = nftnl_batch_iovec_len(batch);
		struct iovec *iov = calloc((size_t)iovlen, sizeof(*iov));
		struct sockaddr_nl snl = { .nl_family = AF_NETLINK };
		struct msghdr msg = { &snl, sizeof(snl), iov, (size_t)iovlen,
				      NULL, 0, 0 };
		int size = 4096;

		nftnl_batch_iovec(batch, iov, (uint32_t)iovlen);
		for (int i = 0; i < iovlen; i++)
			size += (int)iov[i].iov_len;
		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_SNDBUFFORCE,
			   &size, sizeof(size));
		size = (int)msgs * 2048 + (1 << 20);
		setsockopt(mnl_socket_get_fd(nl), SOL_SOCKET, SO_RCVBUFFORCE,
			   &size, sizeof(size));
		if (sendmsg(mnl_socket_get_fd(nl), &msg, 0) < 0) {
			perror("sendmsg");
			return -1;
		}
		free(iov);
	}
	while (msgs > 0) {
		ssize_t n = mnl_socket_recvfrom(nl, buf, sizeof(buf));
		int len = (int)n;

		if (n < 0)
			return -1;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; mnl_nlmsg_ok(h, len);
		     h = mnl_nlmsg_next(h, &len))
			if (h->nlmsg_type == NLMSG_ERROR) {
				const struct nlmsgerr *e = mnl_nlmsg_get_payload(h);

				if (e->error && !err)
					err = e->error;
				msgs--;
			}
	}
	{
		double ms = ms_since(&t0);

		nftnl_set_free(set);
		nftnl_batch_free(batch);
		if (err) {
			fprintf(stderr, "nlfloor: %s\n", strerror(-err));
			return -1;
		}
		return ms;
	}
}

static double epoch_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int fleet_floor(struct mnl_socket *nl, const char *table,
		       unsigned long nports, char **argv)
{
	unsigned long first = strtoul(argv[0], NULL, 10);
	double rate = strtod(argv[1], NULL);
	unsigned long n = (unsigned long)(rate * strtod(argv[2], NULL));
	double start = strtod(argv[3], NULL);
	double *delay = calloc(n + 1, sizeof(*delay));
	FILE *f = strcmp(argv[4], "-") ? fopen(argv[4], "we") : NULL;
	unsigned long done = 0;

	if (delay == NULL || (f == NULL && strcmp(argv[4], "-")) || rate <= 0)
		return 1;
	while (done < n) {
		double now = epoch_ms(), end;
		unsigned long due = (unsigned long)((now - start) * rate / 1e3) + 1;

		if (now < start)
			due = 0;
		if (due > n)
			due = n;
		if (due <= done) {
			/* Nothing due: sleep until the next operation is. */
			double next = start + (double)done * 1e3 / rate;
			struct timespec ts = { 0, (long)((next - now) * 1e6) };

			if (next - now >= 1000)
				ts = (struct timespec){ (time_t)((next - now) / 1e3), 0 };
			nanosleep(&ts, NULL);
			continue;
		}
		if (batch(nl, table, first + done, due - done, nports, ADD) < 0)
			return 1;
		end = epoch_ms();
		for (unsigned long i = done; i < due; i++)
			delay[i] = end - (start + (double)i * 1e3 / rate);
		if (f && (fprintf(f, "%lu\n", due) < 0 || fflush(f) != 0 ||
			  fdatasync(fileno(f)) < 0))
			return 1;
		done = due;
	}
	for (unsigned long i = 0; i < n; i++)
		printf("%.3f\n", delay[i]);
	if (f)
		fclose(f);
	free(delay);
	return 0;
}

/* The delay of each entry of a read, acknowledged. */
static int stream_floor(struct mnl_socket *nl, const char *table,
			unsigned long nports, char **argv)
{
	const char *stream = argv[2], *group = argv[3];
	unsigned long n = strtoul(argv[4], NULL, 10);
	unsigned long first = strtoul(argv[6], NULL, 10), got = 0;
	FILE *f = strcmp(argv[5], "-") ? fopen(argv[5], "we") : NULL;
	redisContext *rc = redisConnect(argv[0], atoi(argv[1]));
	char (*ids)[48] = calloc(n + 1, sizeof(*ids));
	double *delay = calloc(n + 1, sizeof(*delay));
	const char **xack = calloc(256 + 3, sizeof(*xack));
	struct rusage ru;

	if (rc == NULL || rc->err || ids == NULL || delay == NULL ||
	    xack == NULL || (f == NULL && strcmp(argv[5], "-"))) {
		fprintf(stderr, "nlfloor: cannot start (redis: %s)\n",
			rc ? rc->errstr : "?");
		return 1;
	}
	while (got < n) {
		redisReply *r = redisCommand(rc, "XREADGROUP GROUP %s c COUNT 256 "
					     "BLOCK 5000 STREAMS %s >", group,
					     stream);
		const redisReply *e;
		size_t k;
		double end;

		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			fprintf(stderr, "nlfloor: XREADGROUP: %s\n",
				r ? r->str : rc->errstr);
			return 1;
		}
		if (r->type != REDIS_REPLY_ARRAY) {	/* 5 s without one */
			freeReplyObject(r);
			break;
		}
		e = r->element[0]->element[1];
		k = e->elements;
		if (k > n - got)
			k = n - got;
		if (batch(nl, table, first + got, k, nports, ADD) < 0)
			return 1;
		end = epoch_ms();
		xack[0] = "XACK";
		xack[1] = stream;
		xack[2] = group;
		for (size_t i = 0; i < k; i++) {
			const char *id = e->element[i]->element[0]->str;

			snprintf(ids[got + i], sizeof(ids[0]), "%s", id);
			delay[got + i] = end - strtod(id, NULL);
			xack[3 + i] = ids[got + i];
		}
		if (f && (fprintf(f, "%lu\n", got) < 0 || fflush(f) != 0 ||
			  fdatasync(fileno(f)) < 0))
			return 1;
		freeReplyObject(r);
		r = redisCommandArgv(rc, (int)k + 3, xack, NULL);
		if (r == NULL)
			return 1;
		freeReplyObject(r);
		got += k;
	}
	for (unsigned long i = 0; i < got; i++)
		printf("%s %.3f\n", ids[i], delay[i]);
	if (getrusage(RUSAGE_SELF, &ru) == 0)	/* this reader's CPU */
		fprintf(stderr, "cpu %.6f\n",
			(double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
			(double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
	if (f)
		fclose(f);
	redisFree(rc);
	free(ids);
	free(delay);
	free(xack);
	return 0;
}

int main(int argc, char **argv)
{
	struct mnl_socket *nl;
	unsigned long naddr, nports;
	int r = 0;

	if (argc != 4 && argc != 6 && argc != 9 &&
	    !(argc == 12 && strcmp(argv[4], "stream") == 0))
		return 64;
	naddr = strtoul(argv[2], NULL, 10);
	nports = strtoul(argv[3], NULL, 10);
	nl = mnl_socket_open(NETLINK_NETFILTER);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0)
		return 1;
	if (argc == 12) {
		r = stream_floor(nl, argv[1], nports, &argv[5]);
	} else if (argc == 9) {
		r = fleet_floor(nl, argv[1], nports, &argv[4]);
	} else if (argc == 4) {
		double ms = batch(nl, argv[1], 0, naddr, nports, REPLACE);

		if (ms < 0)
			r = 1;
		else
			printf("%.1f\n", ms);
	} else {
		unsigned long first = strtoul(argv[4], NULL, 10);
		unsigned long repeat = strtoul(argv[5], NULL, 10);

		for (unsigned long i = 0; i < repeat && r == 0; i++) {
			double ms = batch(nl, argv[1], first, naddr, nports, ADD);

			if (ms < 0 || batch(nl, argv[1], first, naddr, nports,
					    DEL) < 0)
				r = 1;
			else
				printf("%.3f\n", ms);
		}
	}
	mnl_socket_close(nl);
	return r;
}
