#include "reason.h"

const char *http_status_phrase(int status)
{
	switch (status) {
	case 200: return "OK";
	case 203: return "Non-Authoritative Information";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 300: return "Multiple Choices";
	case 301: return "Moved Permanently";
	case 304: return "Not Modified";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 410: return "Gone";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 416: return "Range Not Satisfiable";
	case 417: return "Expectation Failed";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	case 508: return "Loop Detected";
	default: return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Error";
	}
}

const struct lv_reason_info lv_reasons[R__COUNT] = {
#define LV_R_INFO(e, tok, st, msg) [e] = {tok, st, msg},
	LV_REASONS(LV_R_INFO)
#undef LV_R_INFO
};

const enum lv_reason lv_fallback_causes[LV_FALLBACK_CAUSES_N] = {
#define LV_FC_ROW(e) e,
	LV_FALLBACK_CAUSES(LV_FC_ROW)
#undef LV_FC_ROW
};

int reason_fallback_cause(enum lv_reason reason)
{
	for (int i = 0; i < LV_FALLBACK_CAUSES_N; i++)
		if (lv_fallback_causes[i] == reason)
			return i;
	return -1;
}
