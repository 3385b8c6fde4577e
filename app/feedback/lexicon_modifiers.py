"""The words that change how the words after them count, for `app.feedback.classify`: negators,
intensifiers and contrasts. Data only, written as `app.feedback.lexicon` is.
"""

from __future__ import annotations

# Words that negate what follows. The weight is what a negator scores when nothing follows it to
# negate: in feedback, "nobody came", "it hasn't updated", "não chegou nada", 没人接 are complaints
# even though "came" or "updated" is no sentiment word. Praise that a negator starts ("no
# complaints", "can't fault it", 没毛病) is listed as a phrase in TERMS.
NEGATORS: dict[str, dict[float, str]] = {
    "en": {
        0.0: "neither, nor, without, no one, none",
        -1.0: """not, never, nothing, nobody, hardly, barely, don't, doesn't, didn't, isn't, aren't,
            wasn't, weren't, won't, wouldn't, shouldn't, haven't, hasn't, hadn't, ain't, dont,
            doesnt, didnt, isnt, arent, wasnt, werent, wouldnt, havent, hasnt, hadnt, can't,
            cannot, cant, couldn't, couldnt, zero""",
    },
    "pt": {
        0.0: "sem",
        -1.0: "não, nunca, nem, nada, ninguém, jamais, nenhum, nenhuma, nao",
    },
    "es": {
        0.0: "sin, tampoco",
        -1.0: "nunca, ni, nadie, jamás, ningún, ninguno, ninguna, nada",
    },
    "zh": {
        -1.0: """不, 没, 没有, 未, 无, 别, 不是, 不太, 不够, 不怎么, 从未, 从不, 从没, 毫无,
            未能, 尚未, 并非, 并不, 绝不, 还没, 还没有""",
    },
}

# "no" negates only the next word or a verb behind clitics ("no me llegó", "no lo recomiendo"):
# in Portuguese it also means "in the" ("no app foi ótimo"), which must not negate anything. It
# scores its weight when it negates nothing only behind a clitic ("no se actualiza", "no lo
# estaba"), which Portuguese "no" never precedes.
SHORT_NEGATORS: dict[float, str] = {-1.0: "no"}
SHORT_NEGATOR_BRIDGES = """me, te, se, le, les, lo, la, los, las, nos, os, ha, han, he, has, hemos,
    quedé, quedó, había, hay, es, era, fue, está, están, estaba, muy, longer, more"""

# Multipliers for the sentiment word right after them ("muito ruim", "非常满意").
INTENSIFIERS: dict[str, dict[float, str]] = {
    "en": {
        1.5: """very, really, so, extremely, super, totally, absolutely, incredibly, highly, too,
            completely, utterly, truly, such a, most""",
        1.25: "quite, pretty, rather",
        0.75: "a bit, a little, slightly, kind of, somewhat, fairly",
    },
    "pt": {
        1.5: """muito, muita, mto, mt, tão, extremamente, realmente, totalmente, completamente""",
        2.0: "muitíssimo",
        1.25: "bastante",
        0.75: "meio, um pouco",
    },
    "es": {
        1.5: "muy, mucho, tan, demasiado, extremadamente",
        2.0: "muchísimo",
        0.75: "algo, un poco",
    },
    "zh": {
        1.5: """很, 非常, 太, 特别, 超, 超级, 真, 真的, 十分, 极其, 极, 实在, 简直, 相当, 好,
            最, 更""",
        1.25: "挺, 蛮, 这么, 那么",
        0.75: "有点, 有些, 比较",
    },
}

# After one of these, the clause that follows counts half again and the one before it half:
# "great app but late delivery". A contrast may score itself: "shame", 可惜 regret what follows.
# Portuguese "mas" is left out: folded, it is also Spanish "más" (more).
CONTRASTS: dict[str, dict[float, str]] = {
    "en": {0.0: "but, however, although, though, except", -1.5: "shame, pity, too bad"},
    "pt": {0.0: "porém, contudo, entretanto, no entanto, só que, embora", -1.5: "pena que, pena"},
    "es": {0.0: "pero, sin embargo, no obstante, aunque", -1.5: "lástima, lástima que"},
    "zh": {0.0: "但是, 但, 可是, 不过, 然而, 却, 就是", -1.5: "可惜, 遗憾"},
}
