/* channel: the registry of payment channels. See include/channel.h. */
#include "channel.h"

#include <string.h>

static const pay_channel_t *const CHANNELS[] = { &CHANNEL_ALIPAY, &CHANNEL_WECHAT };

const pay_channel_t *channel_find(const char *name)
{
    for (size_t i = 0; i < sizeof CHANNELS / sizeof CHANNELS[0]; i++) {
        if (name && !strcmp(CHANNELS[i]->name, name))
            return CHANNELS[i];
    }
    return NULL;
}

bool channel_offers(const pay_channel_t *ch, const char *method)
{
    for (const char *const *m = ch->methods; *m; m++) {
        if (!strcmp(*m, method))
            return true;
    }
    return false;
}

const pay_channel_t *channel_at(size_t i)
{
    return i < sizeof CHANNELS / sizeof CHANNELS[0] ? CHANNELS[i] : NULL;
}

bool channel_ua_is_wechat(const char *ua)
{
    return ua && strstr(ua, "MicroMessenger") != NULL;
}

bool channel_ua_is_mobile(const char *ua)
{
    return ua && (strstr(ua, "Mobile") || strstr(ua, "Android") || strstr(ua, "iPhone") || strstr(ua, "iPad"));
}
