/*
 * test_azure_auth.c - unit tests for Azure credentials and SharedKey
 * signing (include/azure_auth.h). The expected strings-to-sign were
 * written out by hand from Microsoft's "Authorize with Shared Key" rules,
 * and the expected signatures computed independently with
 *   printf "%b" "$STRING" | openssl dgst -sha256 -mac HMAC -macopt hexkey:$KEY -binary | base64
 * so a canonicalization mistake shows up both as a string and a signature
 * mismatch. Azurite checks the same signatures live in
 * tests/integration/store_azure.sh.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "azure_auth.h"

#define DATE "Sun, 06 Nov 1994 08:49:37 GMT"
/* base64 of "tierfs-test-key-0123456789abcdef" */
#define TEST_KEY "dGllcmZzLXRlc3Qta2V5LTAxMjM0NTY3ODlhYmNkZWY="

struct sign_case {
	const char *name;
	const char *account;
	const char *key_b64;
	struct azure_sign_req req;
	const char *string_to_sign;
	const char *authorization;
};

static const struct azure_kv put_headers[] = {
	{ "Content-Type", "text/plain" },
	{ "Content-Length", "11" },
	{ "x-ms-version", "2021-08-06" },
	{ "x-ms-date", DATE },
	{ "x-ms-blob-type", "BlockBlob" },
};

static const struct azure_kv get_headers[] = {
	{ "x-ms-version", "2021-08-06" },
	{ "x-ms-range", "bytes=0-99" },
	{ "x-ms-date", DATE },
	{ "Content-Length", "0" },
};

static const struct azure_kv list_headers[] = {
	{ "x-ms-version", "2021-08-06" },
	{ "x-ms-date", DATE },
	{ "Content-Length", "0" },
};
static const struct azure_kv list_query[] = {
	{ "restype", "container" },
	{ "comp", "list" },
	{ "prefix", "a/b c" },
	{ "maxresults", "5" },
};

/* Mixed case, repeated names, untidy whitespace, unsorted. */
static const struct azure_kv block_headers[] = {
	{ "X-MS-Version", "2021-08-06" },
	{ "x-ms-meta-B", "1" },
	{ "x-ms-meta-b", "2" },
	{ "x-ms-meta-a", "  x \t  y  " },
	{ "x-ms-date", DATE },
	{ "Content-Length", "4" },
	{ "User-Agent", "tierfs" }, /* not an x-ms- header: not signed */
};
static const struct azure_kv block_query[] = {
	{ "blockid", "YmxvY2stMDAwMDAwMDE=" },
	{ "Comp", "block" },
	{ "include", "snapshots" },
	{ "include", "metadata" },
};

#define N(a) (sizeof(a) / sizeof((a)[0]))

static const struct sign_case sign_cases[] = {
	{
		"put blob, path-style emulator URL", AZURE_DEV_ACCOUNT, AZURE_DEV_KEY,
		{ "PUT", "/devstoreaccount1/cont/dir/a%20b.txt", NULL, 0, put_headers, N(put_headers) },
		"PUT\n\n\n11\n\ntext/plain\n\n\n\n\n\n\n"
		"x-ms-blob-type:BlockBlob\nx-ms-date:" DATE "\nx-ms-version:2021-08-06\n"
		"/devstoreaccount1/devstoreaccount1/cont/dir/a%20b.txt",
		"SharedKey devstoreaccount1:szO5sMRXNynfeVLniDx1tBedrzJYKQX04oJqSbD/PdM=",
	},
	{
		"ranged get, zero content length signed empty", AZURE_DEV_ACCOUNT, AZURE_DEV_KEY,
		{ "GET", "/devstoreaccount1/cont/k", NULL, 0, get_headers, N(get_headers) },
		"GET\n\n\n\n\n\n\n\n\n\n\n\n"
		"x-ms-date:" DATE "\nx-ms-range:bytes=0-99\nx-ms-version:2021-08-06\n"
		"/devstoreaccount1/devstoreaccount1/cont/k",
		"SharedKey devstoreaccount1:dwTPUTzZ2RuSvdBV9oycbiAKZraYuQ985Zl7pBZ/XGI=",
	},
	{
		"list blobs, sorted raw query values", "myaccount", TEST_KEY,
		{ "GET", "/cont", list_query, N(list_query), list_headers, N(list_headers) },
		"GET\n\n\n\n\n\n\n\n\n\n\n\n"
		"x-ms-date:" DATE "\nx-ms-version:2021-08-06\n"
		"/myaccount/cont\ncomp:list\nmaxresults:5\nprefix:a/b c\nrestype:container",
		"SharedKey myaccount:kh9XqlUj8rEBqfWiVirBjuu58L3v3HBgDXnHqKbvqp0=",
	},
	{
		"put block, header folding and repeated names", "myaccount", TEST_KEY,
		{ "PUT", "/cont/blob", block_query, N(block_query), block_headers, N(block_headers) },
		"PUT\n\n\n4\n\n\n\n\n\n\n\n\n"
		"x-ms-date:" DATE "\nx-ms-meta-a:x y\nx-ms-meta-b:1,2\nx-ms-version:2021-08-06\n"
		"/myaccount/cont/blob\nblockid:YmxvY2stMDAwMDAwMDE=\ncomp:block\n"
		"include:metadata,snapshots",
		"SharedKey myaccount:PxpsWydQaO5lkTFDAjXRoJSlvwrE/A4VzqGthBTnE3c=",
	},
};

static void test_string_to_sign(void **state)
{
	for (size_t i = 0; i < N(sign_cases); i++) {
		const struct sign_case *c = &sign_cases[i];
		struct tbuf b = TBUF_INIT;

		print_message("case: %s\n", c->name);
		assert_int_equal(azure_string_to_sign(c->account, &c->req, &b), 0);
		assert_int_equal(tbuf_append(&b, "", 1), 0);
		assert_string_equal((const char *)b.data, c->string_to_sign);
		tbuf_release(&b);
	}
}

static void test_authorization(void **state)
{
	for (size_t i = 0; i < N(sign_cases); i++) {
		const struct sign_case *c = &sign_cases[i];
		struct azure_cred cred = { 0 };
		char auth[256];

		print_message("case: %s\n", c->name);
		cred.account = strdup(c->account);
		cred.key = azure_b64_decode(c->key_b64, &cred.keylen);
		assert_non_null(cred.key);
		assert_int_equal(azure_authorization(&cred, &c->req, auth, sizeof(auth)), 0);
		assert_string_equal(auth, c->authorization);
		/* A buffer too small is reported, not truncated silently. */
		assert_int_equal(azure_authorization(&cred, &c->req, auth, 20), -ENAMETOOLONG);
		azure_cred_release(&cred);
	}
}

static void test_authorization_needs_key(void **state)
{
	struct azure_cred cred = { 0 };
	char auth[128];

	cred.account = strdup("acct");
	cred.sas = strdup("sv=2021-08-06&sig=x");
	assert_int_equal(azure_authorization(&cred, &sign_cases[0].req, auth, sizeof(auth)),
			 -EINVAL);
	azure_cred_release(&cred);
}

struct connstr_case {
	const char *cs;
	int rc;
	const char *account;
	size_t keylen;      /* 0: no key expected */
	const char *sas;    /* NULL: no SAS expected */
	const char *endpoint;
	const char *err_has; /* substring of the message on failure */
};

static const struct connstr_case connstr_cases[] = {
	/* azurite's documented development connection string */
	{ "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" AZURE_DEV_KEY
	  ";BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;",
	  0, "devstoreaccount1", 64, NULL, "http://127.0.0.1:10000/devstoreaccount1", NULL },
	{ "UseDevelopmentStorage=true", 0, "devstoreaccount1", 64, NULL,
	  "http://127.0.0.1:10000/devstoreaccount1", NULL },
	{ "AccountName=acct;AccountKey=" TEST_KEY, 0, "acct", 32, NULL,
	  "https://acct.blob.core.windows.net", NULL },
	{ "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=" TEST_KEY
	  ";EndpointSuffix=core.chinacloudapi.cn",
	  0, "acct", 32, NULL, "https://acct.blob.core.chinacloudapi.cn", NULL },
	/* key names are case-insensitive, whitespace around pairs ignored */
	{ " accountname=acct; ACCOUNTKEY=" TEST_KEY "; blobendpoint=http://h:1/p/ ;", 0, "acct",
	  32, NULL, "http://h:1/p", NULL },
	/* SAS only: values keep their '=' and '&' */
	{ "BlobEndpoint=https://acct.blob.core.windows.net/;SharedAccessSignature="
	  "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&sig=ab%2Bc%3D",
	  0, NULL, 0, "sv=2021-08-06&ss=b&srt=sco&sp=rwdlac&sig=ab%2Bc%3D",
	  "https://acct.blob.core.windows.net", NULL },
	{ "AccountName=acct;SharedAccessSignature=?sv=1&sig=x", 0, "acct", 0, "sv=1&sig=x",
	  "https://acct.blob.core.windows.net", NULL },
	/* other services' endpoints are ignored */
	{ "AccountName=a;AccountKey=" TEST_KEY ";QueueEndpoint=http://q", 0, "a", 32, NULL,
	  "https://a.blob.core.windows.net", NULL },
	{ "AccountName=acct;AccountKey=not*base64", -EINVAL, NULL, 0, NULL, NULL, "base64" },
	{ "AccountName=acct", -EINVAL, NULL, 0, NULL, NULL, "no azure credentials" },
	{ "AccountKey=" TEST_KEY, -EINVAL, NULL, 0, NULL, NULL, "account name" },
	{ "garbage", -EINVAL, NULL, 0, NULL, NULL, "malformed" },
	{ "AccountName=a;AccountKey=" TEST_KEY ";BlobEndpoint=ftp://x", -EINVAL, NULL, 0, NULL,
	  NULL, "not an http(s) URL" },
};

static void check_cred(const struct azure_cred *c, const char *account, size_t keylen,
		       const char *sas, const char *endpoint)
{
	if (account)
		assert_string_equal(c->account, account);
	else
		assert_null(c->account);
	assert_int_equal(c->keylen, keylen);
	if (keylen)
		assert_non_null(c->key);
	else
		assert_null(c->key);
	if (sas)
		assert_string_equal(c->sas, sas);
	else
		assert_null(c->sas);
	assert_string_equal(c->endpoint, endpoint);
}

static void test_connstr(void **state)
{
	for (size_t i = 0; i < N(connstr_cases); i++) {
		const struct connstr_case *c = &connstr_cases[i];
		struct azure_cred cred;
		char err[256] = "";

		print_message("case: %s\n", c->cs);
		assert_int_equal(azure_cred_from_connstr(c->cs, &cred, err, sizeof(err)), c->rc);
		if (c->rc) {
			assert_non_null(strstr(err, c->err_has));
			/* The key never appears in a message. */
			assert_null(strstr(err, TEST_KEY));
			assert_null(cred.endpoint);
			continue;
		}
		check_cred(&cred, c->account, c->keylen, c->sas, c->endpoint);
		azure_cred_release(&cred);
	}
}

static void test_dev_key_decodes(void **state)
{
	/* First and last bytes of the decoded key, from `base64 -d | xxd -p`. */
	static const uint8_t head[4] = { 0x11, 0xbc, 0xbc, 0xbd };
	static const uint8_t tail[4] = { 0xb2, 0x81, 0x8c, 0x1b };
	size_t len = 0;
	uint8_t *k = azure_b64_decode(AZURE_DEV_KEY, &len);

	assert_non_null(k);
	assert_int_equal(len, 64);
	assert_memory_equal(k, head, 4);
	assert_memory_equal(k + 60, tail, 4);
	free(k);
	assert_null(azure_b64_decode("abc", &len));
	assert_null(azure_b64_decode("", &len));
}

static void test_env(void **state)
{
	struct azure_cred cred;
	char err[256] = "";

	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	unsetenv("AZURE_STORAGE_ACCOUNT");
	unsetenv("AZURE_STORAGE_KEY");
	unsetenv("AZURE_STORAGE_SAS_TOKEN");
	assert_int_equal(azure_cred_from_env(NULL, &cred, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "AZURE_STORAGE_CONNECTION_STRING"));

	setenv("AZURE_STORAGE_ACCOUNT", "acct", 1);
	setenv("AZURE_STORAGE_SAS_TOKEN", "?sv=2021-08-06&sig=s", 1);
	assert_int_equal(azure_cred_from_env(NULL, &cred, err, sizeof(err)), 0);
	check_cred(&cred, "acct", 0, "sv=2021-08-06&sig=s", "https://acct.blob.core.windows.net");
	azure_cred_release(&cred);

	/* A key wins over a SAS; the endpoint override wins over the default. */
	setenv("AZURE_STORAGE_KEY", TEST_KEY, 1);
	assert_int_equal(azure_cred_from_env("http://127.0.0.1:9/acct/", &cred, err, sizeof(err)), 0);
	check_cred(&cred, "acct", 32, NULL, "http://127.0.0.1:9/acct");
	azure_cred_release(&cred);

	/* The connection string takes precedence over the separate variables. */
	setenv("AZURE_STORAGE_CONNECTION_STRING", "UseDevelopmentStorage=true", 1);
	assert_int_equal(azure_cred_from_env(NULL, &cred, err, sizeof(err)), 0);
	check_cred(&cred, "devstoreaccount1", 64, NULL, "http://127.0.0.1:10000/devstoreaccount1");
	azure_cred_release(&cred);
	assert_int_equal(azure_cred_from_env("http://127.0.0.1:4242/devstoreaccount1", &cred, err,
					     sizeof(err)), 0);
	check_cred(&cred, "devstoreaccount1", 64, NULL, "http://127.0.0.1:4242/devstoreaccount1");
	azure_cred_release(&cred);
	assert_int_equal(azure_cred_from_env("127.0.0.1:4242", &cred, err, sizeof(err)), -EINVAL);
	unsetenv("AZURE_STORAGE_CONNECTION_STRING");
	unsetenv("AZURE_STORAGE_ACCOUNT");
	unsetenv("AZURE_STORAGE_KEY");
	unsetenv("AZURE_STORAGE_SAS_TOKEN");
}

static void test_helpers(void **state)
{
	static const struct {
		const char *in;
		int keep_slash;
		const char *out;
	} enc[] = {
		{ "plain-key_1.~x", 0, "plain-key_1.~x" },
		{ "a/b c", 1, "a/b%20c" },
		{ "a/b c", 0, "a%2Fb%20c" },
		{ "YmxvY2s+/w==", 0, "YmxvY2s%2B%2Fw%3D%3D" },
		{ "\xc3\xa9", 1, "%C3%A9" },
	};
	char date[32];
	char b64[32];

	for (size_t i = 0; i < N(enc); i++) {
		struct tbuf b = TBUF_INIT;

		assert_int_equal(azure_url_encode(enc[i].in, enc[i].keep_slash, &b), 0);
		assert_int_equal(tbuf_append(&b, "", 1), 0);
		assert_string_equal((const char *)b.data, enc[i].out);
		tbuf_release(&b);
	}
	/* RFC 7231's example date. */
	azure_http_date(784111777, date);
	assert_string_equal(date, "Sun, 06 Nov 1994 08:49:37 GMT");
	azure_http_date(0, date);
	assert_string_equal(date, "Thu, 01 Jan 1970 00:00:00 GMT");
	azure_b64_encode((const uint8_t *)"block-00000001", 14, b64);
	assert_string_equal(b64, "YmxvY2stMDAwMDAwMDE=");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_string_to_sign),
		cmocka_unit_test(test_authorization),
		cmocka_unit_test(test_authorization_needs_key),
		cmocka_unit_test(test_connstr),
		cmocka_unit_test(test_dev_key_decodes),
		cmocka_unit_test(test_env),
		cmocka_unit_test(test_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
