/*
 * test_sigv4.c - AWS Signature V4 against the examples AWS publishes in the
 * S3 API reference ("Signature Calculations for the Authorization Header:
 * Transferring Payload in a Single Chunk"): GET object with a range, PUT
 * object, GET bucket lifecycle and GET bucket (list objects). Each case goes
 * through the real signing code and must reproduce both the documented hash
 * of the canonical request and the documented signature. The header values
 * carry the stray spaces of the documented raw requests, and one case feeds
 * the query unsorted, so trimming and sorting are exercised too.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sigv4.h"

#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define PUT_SHA256 "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072"
#define HOST "examplebucket.s3.amazonaws.com"
#define DATE "20130524T000000Z"

static const struct sigv4_creds example_creds = {
	.access_key = "AKIAIOSFODNN7EXAMPLE",
	.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
	.region = "us-east-1",
	.service = "s3",
};

struct sig_case {
	const char *name;
	const char *method;
	const char *path;
	const char *query;
	struct sigv4_header headers[6];
	size_t nheaders;
	const char *payload_hash;
	const char *canonical_sha256; /* documented StringToSign last line */
	const char *signed_headers;
	const char *signature;
};

static const struct sig_case cases[] = {
	{
		.name = "GET object, first 10 bytes",
		.method = "GET",
		.path = "/test.txt",
		.query = "",
		.headers = { { "Host", HOST }, { "Range", "bytes=0-9 " },
			     { "x-amz-content-sha256", EMPTY_SHA256 },
			     { "x-amz-date", DATE " " } },
		.nheaders = 4,
		.payload_hash = EMPTY_SHA256,
		.canonical_sha256 = "7344ae5b7ee6c3e7e6b0fe0640412a37625d1fbfff95c48bbb2dc43964946972",
		.signed_headers = "host;range;x-amz-content-sha256;x-amz-date",
		.signature = "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41",
	},
	{
		.name = "PUT object test$file.text",
		.method = "PUT",
		.path = "/test%24file.text",
		.query = NULL,
		.headers = { { "Host", HOST }, { "Date", "Fri, 24 May 2013 00:00:00 GMT" },
			     { "x-amz-date", DATE " " },
			     { "x-amz-storage-class", "REDUCED_REDUNDANCY" },
			     { "x-amz-content-sha256", " " PUT_SHA256 } },
		.nheaders = 5,
		.payload_hash = PUT_SHA256,
		.canonical_sha256 = "9e0e90d9c76de8fa5b200d8c849cd5b8dc7a3be3951ddb7f6a76b4158342019d",
		.signed_headers = "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
		.signature = "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
	},
	{
		.name = "GET bucket lifecycle",
		.method = "GET",
		.path = "/",
		.query = "lifecycle",
		.headers = { { "Host", HOST }, { "x-amz-date", DATE " " },
			     { "x-amz-content-sha256", EMPTY_SHA256 } },
		.nheaders = 3,
		.payload_hash = EMPTY_SHA256,
		.canonical_sha256 = "9766c798316ff2757b517bc739a67f6213b4ab36dd5da2f94eaebf79c77395ca",
		.signed_headers = "host;x-amz-content-sha256;x-amz-date",
		.signature = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543",
	},
	{
		.name = "GET bucket (list objects)",
		.method = "GET",
		.path = "/",
		.query = "max-keys=2&prefix=J",
		.headers = { { "Host", HOST }, { "x-amz-date", DATE " " },
			     { "x-amz-content-sha256", EMPTY_SHA256 } },
		.nheaders = 3,
		.payload_hash = EMPTY_SHA256,
		.canonical_sha256 = "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
		.signed_headers = "host;x-amz-content-sha256;x-amz-date",
		.signature = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
	},
	{
		/* Same request as above with the parameters in the other order:
		 * the canonical query must sort them back. */
		.name = "GET bucket (list objects), unsorted query",
		.method = "GET",
		.path = "/",
		.query = "prefix=J&max-keys=2",
		.headers = { { "x-amz-content-sha256", EMPTY_SHA256 }, { "HOST", HOST },
			     { "X-Amz-Date", DATE } },
		.nheaders = 3,
		.payload_hash = EMPTY_SHA256,
		.canonical_sha256 = "df57d21db20da04d7fa30298dd4488ba3a2b47ca3a489c74750e0f1e7df1b9b7",
		.signed_headers = "host;x-amz-content-sha256;x-amz-date",
		.signature = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7",
	},
};

static void test_examples(void **state)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct sig_case *c = &cases[i];
		struct sigv4_request r = {
			.method = c->method,
			.path = c->path,
			.query = c->query,
			.headers = c->headers,
			.nheaders = c->nheaders,
			.payload_hash = c->payload_hash,
			.amz_date = DATE,
		};
		char hash[65], auth[512], sig[65], expect[512];
		char *canon = sigv4_canonical_request(&r);

		print_message("case: %s\n", c->name);
		assert_non_null(canon);
		sigv4_sha256_hex(canon, strlen(canon), hash);
		assert_string_equal(hash, c->canonical_sha256);
		free(canon);

		assert_int_equal(sigv4_authorization(&example_creds, &r, auth, sizeof(auth), sig), 0);
		assert_string_equal(sig, c->signature);
		snprintf(expect, sizeof(expect),
			 "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/"
			 "s3/aws4_request, SignedHeaders=%s, Signature=%s",
			 c->signed_headers, c->signature);
		assert_string_equal(auth, expect);
	}
}

/* The documented canonical request of the GET object example, verbatim. */
static void test_canonical_text(void **state)
{
	const struct sigv4_request r = {
		.method = "GET",
		.path = "/test.txt",
		.headers = cases[0].headers,
		.nheaders = cases[0].nheaders,
		.payload_hash = EMPTY_SHA256,
		.amz_date = DATE,
	};
	char *canon = sigv4_canonical_request(&r);

	assert_non_null(canon);
	assert_string_equal(canon, "GET\n"
				   "/test.txt\n"
				   "\n"
				   "host:examplebucket.s3.amazonaws.com\n"
				   "range:bytes=0-9\n"
				   "x-amz-content-sha256:" EMPTY_SHA256 "\n"
				   "x-amz-date:20130524T000000Z\n"
				   "\n"
				   "host;range;x-amz-content-sha256;x-amz-date\n" EMPTY_SHA256);
	free(canon);
}

/* The PUT example's payload and its documented x-amz-content-sha256. */
static void test_payload_hash(void **state)
{
	static const char body[] = "Welcome to Amazon S3.";
	char hash[65];

	sigv4_sha256_hex(body, strlen(body), hash);
	assert_string_equal(hash, PUT_SHA256);
	sigv4_sha256_hex("", 0, hash);
	assert_string_equal(hash, EMPTY_SHA256);
}

static void test_uri_encode(void **state)
{
	static const struct {
		const char *in;
		int keep_slash;
		const char *out;
	} t[] = {
		{ "test$file.text", 1, "test%24file.text" },
		{ "a b/c~d_e-f.g", 1, "a%20b/c~d_e-f.g" },
		{ "a/b", 0, "a%2Fb" },
		{ "k=v&x+y", 0, "k%3Dv%26x%2By" },
		{ "\xc3\xa9", 1, "%C3%A9" },
		{ "", 1, "" },
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		char *e = sigv4_uri_encode(t[i].in, t[i].keep_slash);

		assert_non_null(e);
		assert_string_equal(e, t[i].out);
		free(e);
	}
}

static void test_amz_date(void **state)
{
	char d[17];

	sigv4_amz_date((time_t)1369353600, d); /* 2013-05-24 00:00:00 UTC */
	assert_string_equal(d, DATE);
}

/* Headers with the same name are joined with ',' in input order. */
static void test_repeated_header(void **state)
{
	const struct sigv4_header h[] = {
		{ "Host", "h" }, { "X-Multi", "b" }, { "x-amz-date", DATE }, { "x-multi", "  a   c " },
	};
	const struct sigv4_request r = {
		.method = "GET", .path = "/", .headers = h, .nheaders = 4,
		.payload_hash = EMPTY_SHA256, .amz_date = DATE,
	};
	char *canon = sigv4_canonical_request(&r);

	assert_non_null(canon);
	assert_string_equal(canon, "GET\n/\n\nhost:h\nx-amz-date:" DATE "\nx-multi:b,a c\n\n"
				   "host;x-amz-date;x-multi\n" EMPTY_SHA256);
	free(canon);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_examples),
		cmocka_unit_test(test_canonical_text),
		cmocka_unit_test(test_payload_hash),
		cmocka_unit_test(test_uri_encode),
		cmocka_unit_test(test_amz_date),
		cmocka_unit_test(test_repeated_header),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
