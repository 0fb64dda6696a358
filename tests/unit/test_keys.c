/*
 * test_keys.c - unit tests of volume keys and key files: create and load
 * round trips, mode 0600 whatever the umask, refusal to overwrite,
 * passphrase wrapping (right, wrong and missing passphrase, with the
 * default scrypt cost once and a cheap one elsewhere via TIERFS_SCRYPT_N),
 * and every single-byte corruption and several truncations of clear and
 * wrapped files. Each test works in its own temporary directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "codec.h"
#include "keys.h"

struct kdir {
	char dir[64];
	char path[128];
};

static int setup_dir(void **state)
{
	struct kdir *d = calloc(1, sizeof(*d));

	if (!d)
		return -1;
	strcpy(d->dir, "/tmp/tierfs-test-keys.XXXXXX");
	if (!mkdtemp(d->dir)) {
		free(d);
		return -1;
	}
	snprintf(d->path, sizeof(d->path), "%s/volume.key", d->dir);
	*state = d;
	setenv("TIERFS_SCRYPT_N", "1024", 1);
	return 0;
}

static int teardown_dir(void **state)
{
	struct kdir *d = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", d->dir);
	if (system(cmd) != 0)
		return -1;
	free(d);
	return 0;
}

static void read_file(const char *path, struct tbuf *out)
{
	tbuf_reset(out);
	assert_int_equal(key_read_small_file(path, out), 0);
}

static void write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

struct rt_case {
	const char *name;
	const char *passphrase;
	const char *scrypt_n; /* NULL: the default cost */
};

static const struct rt_case rt_cases[] = {
	{ "clear key file", NULL, "1024" },
	{ "wrapped key file, N=2^10", "correct horse battery staple", "1024" },
	{ "wrapped key file, default N=2^17", "pässwörd with UTF-8", NULL },
};

static void test_roundtrip(void **state)
{
	const struct rt_case *c = ((void **)*state)[1];
	struct kdir *d = ((void **)*state)[0];
	struct volkey k, k2;
	struct key_file_info info;
	char id[KEY_ID_SIZE];
	struct stat st;
	mode_t old;
	char name1[CODEC_NAME_SIZE], name2[CODEC_NAME_SIZE];

	if (c->scrypt_n)
		setenv("TIERFS_SCRYPT_N", c->scrypt_n, 1);
	else
		unsetenv("TIERFS_SCRYPT_N");
	old = umask(0); /* the key file must be 0600 regardless */
	assert_int_equal(key_file_create(d->path, c->passphrase, id), 0);
	umask(old);
	assert_int_equal(stat(d->path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_true(S_ISREG(st.st_mode));

	assert_int_equal(key_file_info(d->path, &info), 0);
	assert_int_equal(info.wrapped, c->passphrase != NULL);
	assert_string_equal(info.id, id);
	if (c->passphrase)
		assert_int_equal(info.scrypt_n, c->scrypt_n ? 1024 : KEY_SCRYPT_N_DEFAULT);

	assert_int_equal(key_file_load(d->path, c->passphrase, &k), 0);
	assert_string_equal(k.id, id);
	assert_int_equal(key_file_load(d->path, c->passphrase, &k2), 0);
	assert_memory_equal(k.master, k2.master, VOLKEY_LEN);
	assert_memory_equal(k.enc, k2.enc, VOLKEY_LEN);
	/* The loaded key names chunks the same way each time. */
	assert_int_equal(codec_chunk_name(&k, "abc", 3, name1), 0);
	assert_int_equal(codec_chunk_name(&k2, "abc", 3, name2), 0);
	assert_string_equal(name1, name2);

	if (c->passphrase) {
		assert_int_equal(key_file_load(d->path, NULL, &k2), -ENOKEY);
		assert_int_equal(key_file_load(d->path, "wrong", &k2), -EACCES);
		assert_true(strstr(keys_errmsg(), "passphrase") != NULL);
		assert_int_equal(key_file_load(d->path, "correct horse battery stapl", &k2), -EACCES);
	} else {
		/* A passphrase given for a clear file is ignored. */
		assert_int_equal(key_file_load(d->path, "anything", &k2), 0);
		assert_memory_equal(k.master, k2.master, VOLKEY_LEN);
		volkey_release(&k2);
	}
	/* On failure the output is zeroed. */
	{
		static const uint8_t zero[sizeof(struct volkey)];

		if (c->passphrase)
			assert_memory_equal(&k2, zero, sizeof(k2));
	}
	volkey_release(&k2);

	/* Never overwritten; the file stays as it was. */
	{
		struct tbuf before = TBUF_INIT, after = TBUF_INIT;

		read_file(d->path, &before);
		assert_int_equal(key_file_create(d->path, c->passphrase, NULL), -EEXIST);
		assert_int_equal(key_file_write(d->path, &k, NULL), -EEXIST);
		read_file(d->path, &after);
		assert_int_equal(before.len, after.len);
		assert_memory_equal(before.data, after.data, before.len);
		tbuf_release(&before);
		tbuf_release(&after);
	}
	/* No temporary files left behind. */
	{
		char cmd[256];

		snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", d->dir);
		assert_int_equal(system(cmd), 0);
	}
	volkey_release(&k);
	/* released keys are wiped */
	{
		static const uint8_t zero[sizeof(struct volkey)];

		assert_memory_equal(&k, zero, sizeof(k));
	}
	setenv("TIERFS_SCRYPT_N", "1024", 1);
}

/* Re-wrapping: the same key under two passphrases and in the clear. */
static void test_rewrap(void **state)
{
	struct volkey k, k1, k2, k3;
	struct tbuf a = TBUF_INIT, b = TBUF_INIT, c = TBUF_INIT;

	assert_int_equal(volkey_generate(&k), 0);
	assert_int_equal(key_file_format(&k, "one", &a), 0);
	assert_int_equal(key_file_format(&k, "one", &b), 0);
	assert_int_equal(key_file_format(&k, NULL, &c), 0);
	/* Fresh salt and nonce: same key and passphrase, different bytes. */
	assert_true(a.len != b.len || memcmp(a.data, b.data, a.len));
	assert_int_equal(key_file_parse(a.data, a.len, "one", &k1), 0);
	assert_int_equal(key_file_parse(b.data, b.len, "one", &k2), 0);
	assert_int_equal(key_file_parse(c.data, c.len, NULL, &k3), 0);
	assert_memory_equal(k.master, k1.master, VOLKEY_LEN);
	assert_memory_equal(k.master, k2.master, VOLKEY_LEN);
	assert_memory_equal(k.master, k3.master, VOLKEY_LEN);
	/* The clear file holds the key in hex; the wrapped one must not. */
	{
		char hex[2 * VOLKEY_LEN + 1];

		hex_encode(k.master, VOLKEY_LEN, hex);
		assert_non_null(memmem(c.data, c.len, hex, strlen(hex)));
		assert_null(memmem(a.data, a.len, hex, strlen(hex)));
		assert_null(memmem(a.data, a.len, hex, 16));
	}
	assert_int_equal(key_file_format(&k, "", &a), -EINVAL);
	setenv("TIERFS_SCRYPT_N", "1000", 1);
	assert_int_equal(key_file_format(&k, "x", &a), -EINVAL);
	setenv("TIERFS_SCRYPT_N", "1024", 1);
	volkey_release(&k);
	volkey_release(&k1);
	volkey_release(&k2);
	volkey_release(&k3);
	tbuf_release(&a);
	tbuf_release(&b);
	tbuf_release(&c);
}

/* Every byte of a clear and of a wrapped file, each with several bit flips. */
static void test_corrupt_every_byte(void **state)
{
	static const uint8_t flips[] = { 0x01, 0x20, 0x80 };

	for (int wrapped = 0; wrapped < 2; wrapped++) {
		const char *pass = wrapped ? "secret" : NULL;
		struct tbuf f = TBUF_INIT;
		struct volkey k, got;

		assert_int_equal(volkey_generate(&k), 0);
		assert_int_equal(key_file_format(&k, pass, &f), 0);
		for (size_t pos = 0; pos < f.len; pos++) {
			for (size_t j = 0; j < sizeof(flips); j++) {
				int rc;

				f.data[pos] ^= flips[j];
				rc = key_file_parse(f.data, f.len, pass, &got);
				f.data[pos] ^= flips[j];
				if (rc == 0)
					fail_msg("wrapped=%d: flip 0x%02x at %zu of '%.*s' loaded", wrapped,
						 flips[j], pos, (int)f.len, (char *)f.data);
				if (wrapped)
					assert_true(rc == -EBADMSG || rc == -EACCES);
				else
					assert_int_equal(rc, -EBADMSG);
			}
		}
		assert_int_equal(key_file_parse(f.data, f.len, pass, &got), 0);
		assert_memory_equal(got.master, k.master, VOLKEY_LEN);
		volkey_release(&got);
		volkey_release(&k);
		tbuf_release(&f);
	}
}

static void test_truncated_and_extended(void **state)
{
	struct kdir *d = *state;

	for (int wrapped = 0; wrapped < 2; wrapped++) {
		const char *pass = wrapped ? "secret" : NULL;
		struct tbuf f = TBUF_INIT;
		struct volkey k, got;
		size_t cuts[] = { 0, 1, 10, 14, 0, 0, 0, 0 };

		assert_int_equal(volkey_generate(&k), 0);
		assert_int_equal(key_file_format(&k, pass, &f), 0);
		cuts[4] = f.len / 2;
		cuts[5] = f.len - 40;
		cuts[6] = f.len - 2;
		cuts[7] = f.len - 1; /* only the final newline missing */
		for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
			unlink(d->path);
			write_file(d->path, f.data, cuts[i]);
			assert_int_equal(key_file_load(d->path, pass, &got), -EBADMSG);
			assert_true(strlen(keys_errmsg()) > 0);
		}
		/* Trailing garbage, and a second key appended. */
		assert_int_equal(tbuf_append(&f, "x", 1), 0);
		assert_int_equal(key_file_parse(f.data, f.len, pass, &got), -EBADMSG);
		f.len--;
		assert_int_equal(tbuf_append(&f, "key=00\n", 7), 0);
		assert_int_equal(key_file_parse(f.data, f.len, pass, &got), -EBADMSG);
		volkey_release(&k);
		tbuf_release(&f);
	}
	unlink(d->path);
}

static void test_missing_and_garbage(void **state)
{
	struct kdir *d = *state;
	struct volkey got;
	struct key_file_info info;
	char big[70000];

	unlink(d->path);
	assert_int_equal(key_file_load(d->path, NULL, &got), -ENOENT);
	assert_int_equal(key_file_info(d->path, &info), -ENOENT);
	write_file(d->path, "hello\n", 6);
	assert_int_equal(key_file_load(d->path, NULL, &got), -EBADMSG);
	assert_int_equal(key_file_info(d->path, &info), -EBADMSG);
	unlink(d->path);
	memset(big, 'a', sizeof(big));
	write_file(d->path, big, sizeof(big));
	assert_int_equal(key_file_load(d->path, NULL, &got), -EFBIG);
	unlink(d->path);
	/* Scrypt parameters beyond the limits are refused before any work. */
	{
		static const char *const bad[] = {
			"scrypt-n=3000000000\n", "scrypt-n=1000\n", "scrypt-n=0\n", "scrypt-n=01024\n",
		};
		struct volkey k;
		struct tbuf f = TBUF_INIT, g = TBUF_INIT;

		assert_int_equal(volkey_generate(&k), 0);
		assert_int_equal(key_file_format(&k, "p", &f), 0);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char *at = memmem(f.data, f.len, "scrypt-n=1024\n", 14);

			assert_non_null(at);
			tbuf_reset(&g);
			assert_int_equal(tbuf_append(&g, f.data, (size_t)(at - (char *)f.data)), 0);
			assert_int_equal(tbuf_append(&g, bad[i], strlen(bad[i])), 0);
			assert_int_equal(tbuf_append(&g, at + 14, f.len - (size_t)(at - (char *)f.data) - 14), 0);
			assert_int_equal(key_file_parse(g.data, g.len, "p", &got), -EBADMSG);
		}
		volkey_release(&k);
		tbuf_release(&f);
		tbuf_release(&g);
	}
	/* Directory that does not exist. */
	{
		char p[200];

		snprintf(p, sizeof(p), "%s/nope/volume.key", d->dir);
		assert_int_equal(key_file_create(p, NULL, NULL), -ENOENT);
	}
}

static void test_ids(void **state)
{
	struct volkey a, b, a2;
	char id[KEY_ID_SIZE];

	assert_int_equal(volkey_generate(&a), 0);
	assert_int_equal(volkey_generate(&b), 0);
	assert_int_equal(volkey_from_master(a.master, &a2), 0);
	key_id(&a, id);
	assert_string_equal(id, a.id);
	assert_string_equal(a.id, a2.id);
	assert_string_not_equal(a.id, b.id);
	assert_int_equal(strspn(id, "0123456789abcdef"), 2 * KEY_ID_LEN);
	/* The id reveals nothing of the key bytes: not a prefix of any of them. */
	{
		char hex[2 * VOLKEY_LEN + 1];

		hex_encode(a.master, VOLKEY_LEN, hex);
		assert_int_not_equal(strncmp(hex, id, 16), 0);
		hex_encode(a.name, VOLKEY_LEN, hex);
		assert_int_not_equal(strncmp(hex, id, 16), 0);
	}
	volkey_release(&a);
	volkey_release(&b);
	volkey_release(&a2);
}

static int setup_case(void **state)
{
	void **pair = malloc(2 * sizeof(void *));
	void *c = *state;

	if (!pair || setup_dir(state)) {
		free(pair);
		return -1;
	}
	pair[0] = *state;
	pair[1] = c;
	*state = pair;
	return 0;
}

static int teardown_case(void **state)
{
	void **pair = *state;
	int rc;

	*state = pair[0];
	rc = teardown_dir(state);
	free(pair);
	return rc;
}

#define RT(i) { rt_cases[i].name, test_roundtrip, setup_case, teardown_case, (void *)&rt_cases[i] }

int main(void)
{
	static const struct CMUnitTest tests[] = {
		RT(0), RT(1), RT(2),
		cmocka_unit_test(test_rewrap),
		cmocka_unit_test(test_corrupt_every_byte),
		cmocka_unit_test_setup_teardown(test_truncated_and_extended, setup_dir, teardown_dir),
		cmocka_unit_test_setup_teardown(test_missing_and_garbage, setup_dir, teardown_dir),
		cmocka_unit_test(test_ids),
	};

	setenv("TIERFS_SCRYPT_N", "1024", 1);
	return cmocka_run_group_tests_name("keys", tests, NULL, NULL);
}
