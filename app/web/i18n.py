"""The follow-up page's words, in the five languages the service speaks (English otherwise).

The widget's words are here too (WIDGET_TEXT): it runs in the customer's browser, on someone
else's page, so they are written into static/widget.js as it is served, and it asks for nothing
more.
"""

from __future__ import annotations

from typing import Final

# The page's language tags, as `<html lang>` takes them.
LANGUAGES: Final = ("en", "zh-Hans", "zh-Hant", "pt", "es")
DEFAULT = "en"

_TRADITIONAL_REGIONS = frozenset({"tw", "hk", "mo"})


def language_of(tag: str | None) -> str | None:
    """The page language for one BCP 47 tag (`pt-BR` → `pt`, `zh-TW` → `zh-Hant`), or None
    when it is none of ours."""
    if not tag:
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        if "hant" in parts[1:] or _TRADITIONAL_REGIONS.intersection(parts[1:]):
            return "zh-Hant"
        return "zh-Hans"
    for language in LANGUAGES:
        if parts[0] == language:
            return language
    return None


def negotiate(customer_locale: str | None, accept_language: str | None) -> str:
    """The customer's locale as the case knows it; else the browser's preferences in order of
    their weights (`q`); else English."""
    chosen = language_of(customer_locale)
    if chosen is not None:
        return chosen
    for tag in _preferences(accept_language or ""):
        chosen = language_of(tag)
        if chosen is not None:
            return chosen
    return DEFAULT


def _preferences(header: str) -> list[str]:
    weighted: list[tuple[float, int, str]] = []
    for index, item in enumerate(header.split(",")[:20]):
        tag, _, params = item.strip().partition(";")
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if tag and tag != "*" and weight > 0:
            weighted.append((-weight, index, tag))
    return [tag for _, _, tag in sorted(weighted)]


# Every key in every language (a test checks it).
TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "question": "Did we resolve your issue?",
        "intro": "Your request {number} was marked as resolved. Tell us how it went: it takes "
        "a moment.",
        "legend": "How satisfied are you with the outcome?",
        "score_1": "Very dissatisfied",
        "score_2": "Dissatisfied",
        "score_3": "Neutral",
        "score_4": "Satisfied",
        "score_5": "Very satisfied",
        "comment": "Anything you would like to add? (optional)",
        "send": "Send",
        "sending": "Sending…",
        "check": "Please check your answer",
        "score_missing": "Choose a score from 1 to 5.",
        "comment_invalid": "This comment cannot be accepted: keep it under {limit} characters, "
        "as plain text.",
        "thanks_title": "Thank you!",
        "thanks": "Your answer helps us do better.",
        "reopened": "We are sorry it is not resolved yet. We have reopened your request and "
        "will get back to you.",
        "used_title": "You have already answered",
        "used": "This link has been used. Thank you for your answer.",
        "expired_title": "This link has expired",
        "expired": "Links to this question work for {days} days. Thank you all the same.",
        "unknown_title": "We cannot find this page",
        "unknown": "The link may be incomplete, or a newer one may have replaced it. Check the "
        "message you received.",
        "limited_title": "Please wait a moment",
        "limited": "There were too many tries from your network. Try again in a minute.",
        "error_title": "Something went wrong",
        "error": "Your answer was not saved. Please try again in a few minutes.",
        "offline": "Your answer could not be sent. Check your connection and try again.",
    },
    "zh-Hans": {
        "question": "我们解决您的问题了吗？",
        "intro": "您的请求 {number} 已标记为已解决。请告诉我们结果如何，只需片刻。",
        "legend": "您对处理结果满意吗？",
        "score_1": "非常不满意",
        "score_2": "不满意",
        "score_3": "一般",
        "score_4": "满意",
        "score_5": "非常满意",
        "comment": "还有什么想告诉我们的吗？（选填）",
        "send": "提交",
        "sending": "正在提交…",
        "check": "请检查您的回答",
        "score_missing": "请选择 1 到 5 分。",
        "comment_invalid": "无法接受此留言：请使用纯文本，且不超过 {limit} 个字符。",
        "thanks_title": "谢谢！",
        "thanks": "您的回答帮助我们做得更好。",
        "reopened": "很抱歉问题尚未解决。我们已重新处理您的请求，并会尽快与您联系。",
        "used_title": "您已经回答过了",
        "used": "此链接已使用。感谢您的回答。",
        "expired_title": "此链接已过期",
        "expired": "此问题的链接有效期为 {days} 天。仍然感谢您。",
        "unknown_title": "找不到此页面",
        "unknown": "链接可能不完整，或已被较新的链接取代。请查看您收到的消息。",
        "limited_title": "请稍候",
        "limited": "来自您网络的尝试次数过多。请一分钟后再试。",
        "error_title": "出了点问题",
        "error": "您的回答未能保存。请几分钟后再试。",
        "offline": "无法发送您的回答。请检查网络连接后重试。",
    },
    "zh-Hant": {
        "question": "我們解決您的問題了嗎？",
        "intro": "您的請求 {number} 已標記為已解決。請告訴我們結果如何，只需片刻。",
        "legend": "您對處理結果滿意嗎？",
        "score_1": "非常不滿意",
        "score_2": "不滿意",
        "score_3": "普通",
        "score_4": "滿意",
        "score_5": "非常滿意",
        "comment": "還有什麼想告訴我們的嗎？（選填）",
        "send": "送出",
        "sending": "正在送出…",
        "check": "請檢查您的回答",
        "score_missing": "請選擇 1 到 5 分。",
        "comment_invalid": "無法接受此留言：請使用純文字，且不超過 {limit} 個字元。",
        "thanks_title": "謝謝！",
        "thanks": "您的回答幫助我們做得更好。",
        "reopened": "很抱歉問題尚未解決。我們已重新處理您的請求，並會盡快與您聯繫。",
        "used_title": "您已經回答過了",
        "used": "此連結已使用。感謝您的回答。",
        "expired_title": "此連結已過期",
        "expired": "此問題的連結有效期為 {days} 天。仍然感謝您。",
        "unknown_title": "找不到此頁面",
        "unknown": "連結可能不完整，或已被較新的連結取代。請查看您收到的訊息。",
        "limited_title": "請稍候",
        "limited": "來自您網路的嘗試次數過多。請一分鐘後再試。",
        "error_title": "發生了一些問題",
        "error": "您的回答未能儲存。請幾分鐘後再試。",
        "offline": "無法傳送您的回答。請檢查網路連線後重試。",
    },
    "pt": {
        "question": "Resolvemos o seu problema?",
        "intro": "Seu pedido {number} foi marcado como resolvido. Conte para nós como foi: leva "
        "só um instante.",
        "legend": "Quão satisfeito você está com o resultado?",
        "score_1": "Muito insatisfeito",
        "score_2": "Insatisfeito",
        "score_3": "Neutro",
        "score_4": "Satisfeito",
        "score_5": "Muito satisfeito",
        "comment": "Quer acrescentar alguma coisa? (opcional)",
        "send": "Enviar",
        "sending": "Enviando…",
        "check": "Verifique a sua resposta",
        "score_missing": "Escolha uma nota de 1 a 5.",
        "comment_invalid": "Não é possível aceitar este comentário: use texto simples, com "
        "menos de {limit} caracteres.",
        "thanks_title": "Obrigado!",
        "thanks": "Sua resposta nos ajuda a melhorar.",
        "reopened": "Lamentamos que ainda não esteja resolvido. Reabrimos o seu pedido e "
        "entraremos em contato.",
        "used_title": "Você já respondeu",
        "used": "Este link já foi usado. Obrigado pela sua resposta.",
        "expired_title": "Este link expirou",
        "expired": "Os links para esta pergunta valem por {days} dias. Obrigado mesmo assim.",
        "unknown_title": "Não encontramos esta página",
        "unknown": "O link pode estar incompleto ou ter sido substituído por um mais recente. "
        "Verifique a mensagem que você recebeu.",
        "limited_title": "Aguarde um momento",
        "limited": "Houve tentativas demais a partir da sua rede. Tente novamente em um minuto.",
        "error_title": "Algo deu errado",
        "error": "Sua resposta não foi salva. Tente novamente em alguns minutos.",
        "offline": "Não foi possível enviar sua resposta. Verifique sua conexão e tente novamente.",
    },
    "es": {
        "question": "¿Resolvimos su problema?",
        "intro": "Su solicitud {number} se marcó como resuelta. Cuéntenos cómo fue: solo le "
        "llevará un momento.",
        "legend": "¿Qué tan satisfecho está con el resultado?",
        "score_1": "Muy insatisfecho",
        "score_2": "Insatisfecho",
        "score_3": "Neutral",
        "score_4": "Satisfecho",
        "score_5": "Muy satisfecho",
        "comment": "¿Quiere añadir algo? (opcional)",
        "send": "Enviar",
        "sending": "Enviando…",
        "check": "Revise su respuesta",
        "score_missing": "Elija una puntuación del 1 al 5.",
        "comment_invalid": "No se puede aceptar este comentario: use texto sin formato, con "
        "menos de {limit} caracteres.",
        "thanks_title": "¡Gracias!",
        "thanks": "Su respuesta nos ayuda a mejorar.",
        "reopened": "Lamentamos que aún no esté resuelto. Hemos reabierto su solicitud y nos "
        "pondremos en contacto con usted.",
        "used_title": "Ya respondió",
        "used": "Este enlace ya se usó. Gracias por su respuesta.",
        "expired_title": "Este enlace ha caducado",
        "expired": "Los enlaces a esta pregunta son válidos durante {days} días. Gracias de "
        "todos modos.",
        "unknown_title": "No encontramos esta página",
        "unknown": "Puede que el enlace esté incompleto o que lo haya reemplazado uno más "
        "reciente. Revise el mensaje que recibió.",
        "limited_title": "Espere un momento",
        "limited": "Hubo demasiados intentos desde su red. Vuelva a intentarlo en un minuto.",
        "error_title": "Algo salió mal",
        "error": "Su respuesta no se guardó. Vuelva a intentarlo en unos minutos.",
        "offline": "No se pudo enviar su respuesta. Compruebe su conexión y vuelva a intentarlo.",
    },
}


# The widget's words (static/widget.js), written into it as it is served (app/web/router.py).
# Every key in every language (a test checks it).
WIDGET_TEXT: Final[dict[str, dict[str, str]]] = {
    "en": {
        "nps": "How likely are you to recommend us to a friend or colleague?",
        "npsLow": "Not at all likely",
        "npsHigh": "Extremely likely",
        "csat": "How satisfied are you with your experience?",
        "csatLow": "Very dissatisfied",
        "csatHigh": "Very satisfied",
        "comment": "Tell us more (optional)",
        "send": "Send",
        "sending": "Sending…",
        "close": "Close",
        "pick": "Choose a score first.",
        "thanks": "Thank you for your feedback!",
        "failed": "Sorry, your answer could not be sent. Please try again.",
    },
    "zh-Hans": {
        "nps": "您向朋友或同事推荐我们的可能性有多大？",
        "npsLow": "完全不可能",
        "npsHigh": "极有可能",
        "csat": "您对这次体验满意吗？",
        "csatLow": "非常不满意",
        "csatHigh": "非常满意",
        "comment": "告诉我们更多（选填）",
        "send": "提交",
        "sending": "正在提交…",
        "close": "关闭",
        "pick": "请先选择一个分数。",
        "thanks": "感谢您的反馈！",
        "failed": "抱歉，您的回答未能发送。请重试。",
    },
    "zh-Hant": {
        "nps": "您向朋友或同事推薦我們的可能性有多大？",
        "npsLow": "完全不可能",
        "npsHigh": "極有可能",
        "csat": "您對這次體驗滿意嗎？",
        "csatLow": "非常不滿意",
        "csatHigh": "非常滿意",
        "comment": "告訴我們更多（選填）",
        "send": "送出",
        "sending": "正在送出…",
        "close": "關閉",
        "pick": "請先選擇一個分數。",
        "thanks": "感謝您的意見回饋！",
        "failed": "抱歉，您的回答未能送出。請重試。",
    },
    "pt": {
        "nps": "Qual a probabilidade de você nos recomendar a um amigo ou colega?",
        "npsLow": "Nada provável",
        "npsHigh": "Extremamente provável",
        "csat": "Quão satisfeito você está com sua experiência?",
        "csatLow": "Muito insatisfeito",
        "csatHigh": "Muito satisfeito",
        "comment": "Conte mais (opcional)",
        "send": "Enviar",
        "sending": "Enviando…",
        "close": "Fechar",
        "pick": "Escolha uma nota primeiro.",
        "thanks": "Obrigado pela sua opinião!",
        "failed": "Desculpe, não foi possível enviar sua resposta. Tente novamente.",
    },
    "es": {
        "nps": "¿Qué probabilidad hay de que nos recomiende a un amigo o colega?",
        "npsLow": "Nada probable",
        "npsHigh": "Muy probable",
        "csat": "¿Qué tan satisfecho está con su experiencia?",
        "csatLow": "Muy insatisfecho",
        "csatHigh": "Muy satisfecho",
        "comment": "Cuéntenos más (opcional)",
        "send": "Enviar",
        "sending": "Enviando…",
        "close": "Cerrar",
        "pick": "Elija primero una puntuación.",
        "thanks": "¡Gracias por su opinión!",
        "failed": "Lo sentimos, no se pudo enviar su respuesta. Vuelva a intentarlo.",
    },
}
