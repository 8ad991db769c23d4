/* Baseline (a): the web stack's ceiling. A FastCGI program (libfcgi) that
 * reads the request body, if any, and answers a fixed 200 body. */
#include <fcgiapp.h>
#include <signal.h>
#include <string.h>

int main(void)
{
    static const char reply[] =
        "Status: 200\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n"
        "{\"ok\":true}\n";
    FCGX_Request r;
    char sink[4096];
    signal(SIGPIPE, SIG_IGN);
    if (FCGX_Init() != 0 || FCGX_InitRequest(&r, 0, 0) != 0)
        return 1;
    while (FCGX_Accept_r(&r) >= 0) {
        while (FCGX_GetStr(sink, (int)sizeof sink, r.in) > 0)
            ;
        FCGX_PutStr(reply, (int)strlen(reply), r.out);
        FCGX_Finish_r(&r);
    }
    return 0;
}
