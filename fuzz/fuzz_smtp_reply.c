/*
 * fuzz_smtp_reply — transport_parse_reply on any reply text. Both results
 * must be NUL-terminated inside their arrays; a status is "c.s.d" with
 * class 2, 4 or 5 and 1-3 digits each; a queue id is printable ASCII
 * without spaces and appears in the text.
 */
#include <string.h>

#include "fuzz.h"
#include "herald/transport.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size + 1);
	char status[16], queue_id[64];
	size_t n;

	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	/* fill the arrays so that a missing terminator shows */
	memset(status, 'S', sizeof(status));
	memset(queue_id, 'Q', sizeof(queue_id));
	transport_parse_reply(text, status, queue_id);

	n = strnlen(status, sizeof(status));
	FUZZ_CHECK(n < sizeof(status), "status not terminated");
	if (n > 0) {
		size_t parts = 0, digits = 0;

		FUZZ_CHECK(strchr("245", status[0]) != NULL && status[1] == '.',
		           "status of another class");
		for (size_t i = 2; i <= n; i++) {
			if (i < n && status[i] >= '0' && status[i] <= '9') {
				digits++;
				continue;
			}
			FUZZ_CHECK(digits >= 1 && digits <= 3,
			           "status part not 1-3 digits");
			FUZZ_CHECK(i == n || status[i] == '.',
			           "status with a stray character");
			parts++;
			digits = 0;
		}
		FUZZ_CHECK(parts == 2, "status not three parts");
		FUZZ_CHECK(strstr(text, status) != NULL, "status not in text");
	}
	n = strnlen(queue_id, sizeof(queue_id));
	FUZZ_CHECK(n < sizeof(queue_id), "queue id not terminated");
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(queue_id[i] > 0x20 && queue_id[i] < 0x7f,
		           "queue id with a space or non-ASCII");
	if (n > 0 && n < sizeof(queue_id) - 1)
		FUZZ_CHECK(strstr(text, queue_id) != NULL,
		           "queue id not in text");
	free(text);
	return 0;
}
