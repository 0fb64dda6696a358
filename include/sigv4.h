/*
 * sigv4.h - AWS Signature Version 4 for requests with the Authorization
 * header (the S3 "single chunk" form: the payload is signed through its
 * SHA-256, never UNSIGNED-PAYLOAD). The functions are pure: they take the
 * request as it will be sent and the time, so they are tested against AWS's
 * published examples (tests/unit/test_sigv4.c).
 */
#ifndef TIERFS_SIGV4_H
#define TIERFS_SIGV4_H

#include <stddef.h>
#include <time.h>

struct sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *region;   /* e.g. "us-east-1" */
	const char *service;  /* e.g. "s3" */
};

struct sigv4_header {
	const char *name;     /* any case; signed lowercased */
	const char *value;    /* as sent; trimmed and space-collapsed when signed */
};

struct sigv4_request {
	const char *method;        /* "GET", "PUT", ... */
	const char *path;          /* URI path as sent, already URI-encoded: "/a%24b" */
	const char *query;         /* query as sent without '?', names and values
				    * already encoded; NULL or "" when none */
	const struct sigv4_header *headers; /* the headers to sign: must hold host
					     * and x-amz-date */
	size_t nheaders;
	const char *payload_hash;  /* lowercase hex SHA-256 of the body */
	const char *amz_date;      /* "YYYYMMDDTHHMMSSZ", the x-amz-date value */
};

/* Lowercase hex SHA-256 of data into out (65 bytes). */
void sigv4_sha256_hex(const void *data, size_t len, char out[65]);

/* t as "YYYYMMDDTHHMMSSZ" (UTC) into out (17 bytes). */
void sigv4_amz_date(time_t t, char out[17]);

/*
 * URI-encode s the SigV4 way: A-Z a-z 0-9 - . _ ~ stay, every other byte
 * becomes %XY (uppercase hex); '/' stays when keep_slash (object paths) and
 * is encoded otherwise (query values). Returns a malloc'd string or NULL.
 */
char *sigv4_uri_encode(const char *s, int keep_slash);

/*
 * The canonical request (step 1 of SigV4): method, path, sorted query,
 * sorted lowercase headers, signed header list, payload hash. Returns a
 * malloc'd string or NULL on ENOMEM. Exposed for tests and debugging.
 */
char *sigv4_canonical_request(const struct sigv4_request *r);

/*
 * Sign r: write the Authorization header value
 *   AWS4-HMAC-SHA256 Credential=AKID/DATE/REGION/SERVICE/aws4_request,
 *   SignedHeaders=a;b;c, Signature=HEX
 * into out, and the bare signature into sig_out (65 bytes) when not NULL.
 * Returns 0, -ENOMEM, -EINVAL (no amz_date) or -ENOSPC (out too small).
 */
int sigv4_authorization(const struct sigv4_creds *c, const struct sigv4_request *r,
			char *out, size_t outlen, char *sig_out);

#endif
