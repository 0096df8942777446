/* unit_main.c - runs every unit test group, prints TAP */
#include "tap.h"

int tap_n, tap_failed;

int
main(void)
{
    test_router();
    test_json();
    test_config();
    test_token();
    test_misc();
    test_secrets();
    test_spool_record();
    printf("1..%d\n", tap_n);
    return tap_failed ? 1 : 0;
}
