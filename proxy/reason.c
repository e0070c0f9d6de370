#include "reason.h"

const struct lv_reason_info lv_reasons[R__COUNT] = {
#define LV_R_INFO(e, tok, st, msg) [e] = {tok, st, msg},
	LV_REASONS(LV_R_INFO)
#undef LV_R_INFO
};
