/*
 * stall_client: a test helper that plays a kvsync client which stalls.
 * It proves the token to a `kvsync serve` daemon, then, by MODE:
 *   pull  asks for a pull as an empty store would and reads nothing, so
 *         the daemon's sender fills the socket and blocks;
 *   push  starts a push and sends nothing more (the daemon's receiver
 *         waits for the sender's plan);
 *   idle  sends no request at all.
 * It prints "stalled" and leaves after SECONDS (or when killed).
 *
 *	stall_client HOST PORT TOKEN_FILE MODE SECONDS
 *
 * Exit 0 once it stalled, 1 when the handshake failed.
 */
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kvsync/auth.h"
#include "kvsync/net.h"
#include "kvsync/proto.h"

static int die(const char *what, int rc)
{
	fprintf(stderr, "stall_client: %s: %s\n", what, rc ? strerror(-rc) : "unexpected frame");
	return 1;
}

/* The next frame, which must be of @type. */
static int expect(struct ks_conn *c, uint8_t type, struct ks_frame *f)
{
	int rc = ks_conn_recv(c, 10000, f);
	if (rc)
		return rc;
	return f->type == type ? 0 : -EPROTO;
}

int main(int argc, char **argv)
{
	if (argc != 6 || (strcmp(argv[4], "pull") && strcmp(argv[4], "push") &&
			  strcmp(argv[4], "idle"))) {
		fprintf(stderr, "usage: stall_client HOST PORT TOKEN_FILE pull|push|idle SECONDS\n");
		return 2;
	}
	if (sodium_init() < 0)
		return 1;
	uint8_t key[KS_AUTH_KEY_LEN];
	char err[256];
	if (ks_token_load(argv[3], key, err, sizeof(err))) {
		fprintf(stderr, "stall_client: %s\n", err);
		return 1;
	}
	int fd;
	int rc = ks_tcp_connect(argv[1], argv[2], 10000, 0, &fd, err, sizeof(err));
	if (rc) {
		fprintf(stderr, "stall_client: %s\n", err);
		return 1;
	}
	struct ks_conn *c;
	if (ks_conn_new(fd, fd, 0, &c))
		return 1;
	struct ks_hello me = {.version = KS_PROTO_VERSION, .flags = KS_HELLO_TOKEN};
	randombytes_buf(me.nonce, KS_NONCE_LEN);
	ks_enc_magic(ks_conn_out(c));
	ks_enc_hello(ks_conn_out(c), &me);
	char junk[100];
	rc = ks_conn_flush(c);
	if (!rc)
		rc = ks_conn_read_magic(c, 10000, junk, sizeof(junk));
	if (rc)
		return die("greeting", rc);
	struct ks_frame f;
	struct ks_hello server;
	const char *why = NULL;
	if ((rc = expect(c, KS_HELLO, &f)) || (rc = ks_dec_hello(&f, &server, &why)))
		return die("server's HELLO", rc);
	uint8_t mac[KS_MAC_LEN];
	ks_auth_mac(key, false, server.nonce, me.nonce, mac);
	ks_enc_auth(ks_conn_out(c), mac);
	if ((rc = expect(c, KS_AUTH, &f)))
		return die("server's AUTH", rc);
	struct ks_ident id = {.node = randombytes_random() | 1u, .epoch = 1};
	ks_enc_open(ks_conn_out(c), KS_OPEN_WRITE);
	ks_enc_ident(ks_conn_out(c), &id);
	if ((rc = expect(c, KS_IDENT, &f)))
		return die("server's IDENT", rc);
	if (!strcmp(argv[4], "pull")) {
		struct ks_req q = {KS_OP_PULL, 0, 0};
		struct ks_start st = {0, 0, KS_START_EMPTY};
		ks_enc_req(ks_conn_out(c), &q);
		ks_enc_start(ks_conn_out(c), &st);
	} else if (!strcmp(argv[4], "push")) {
		struct ks_req q = {KS_OP_PUSH, 0, 0};
		ks_enc_req(ks_conn_out(c), &q);
	}
	if ((rc = ks_conn_flush(c)))
		return die("request", rc);
	printf("stalled\n");
	fflush(stdout);
	/* From now on nothing is read from the connection. */
	poll(NULL, 0, atoi(argv[5]) * 1000);
	ks_conn_close(c);
	return 0;
}
