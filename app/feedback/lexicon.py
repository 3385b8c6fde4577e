"""The word lists behind `app.feedback.classify.classify_text`: data only.

Terms are written as people type them (accents, capitals, simplified Chinese); `classify` folds
them exactly as it folds a comment, so "Péssimo" here matches "pessimo" there. Each block maps a
weight to comma-separated terms; a Latin-script term may be a phrase of several words. A term
may appear in two languages (Portuguese and Spanish share many) but only with the same weight
and kind: `classify` refuses to load a lexicon that contradicts itself.

Chinese is written once, in simplified characters: `classify` adds the traditional form of every
term through `SIMPLIFIED_TO_TRADITIONAL`, so 态度差 also finds 態度差. When adding a term, add
to that table any of its characters whose traditional form differs, or the traditional spelling
of the term goes unmatched.

Weights: 3 strong (worst, 垃圾, adorei), 2 clear (bad, 满意), 1 to 1.5 mild (slow, thanks). Zero
blocks a phrase whose words would otherwise count: "good morning", "boa tarde", 快递, 不好意思.
"""

from __future__ import annotations

# Praise (> 0) or criticism (< 0). A negation turns praise into criticism of the same weight and
# criticism into praise of half its weight: "not good" is bad, "not bad" is only fairly good.
TERMS: dict[str, dict[float, str]] = {
    "en": {
        3.0: """love, loved, loving, amazing, awesome, excellent, outstanding, perfect, perfectly,
            fantastic, wonderful, brilliant, superb, exceptional, incredible, best,
            couldn't be happier, could not be happier""",
        2.0: """great, good, happy, satisfied, pleased, glad, recommend, recommended, helpful,
            friendly, kind, professional, reliable, impressed, beautiful, enjoy, enjoyed,
            smooth, well done, so far so good, easy to use""",
        1.5: """fast, quick, quickly, easy, nice, polite, efficient, convenient, resolved, solved,
            appreciate, appreciated, useful, worth, on time, speedy, prompt, promptly,
            responsive, patient, helped""",
        1.0: "thanks, thank, thank you, thx, like, liked, fixed, easily, simple, cool, clear",
        0.5: "fine, ok, okay, decent, better",
        0.0: """good morning, good afternoon, good evening, good night, would like, looks like,
            feels like, seems like, no thanks, no thank you""",
        -1.0: """problem, problems, issue, issues, expensive, waiting, waited, forever, hard,
            slowly, mediocre, cold, could be better, asap""",
        -1.5: """slow, delay, delays, delayed, missing, wrong, lost, overpriced, bug, bugs, error,
            errors, glitch, fail, failed, fails, failure, complicated, confusing, difficult,
            impossible, unable, complain, urgent, urgently""",
        -2.0: """bad, broken, broke, damaged, defective, faulty, stolen, late, crash, crashes,
            crashed, crashing, buggy, frustrated, frustrating, annoyed, annoying, ignored,
            ignoring, unresponsive, still waiting, mess, dirty, misleading, worse, regret,
            no help, what a joke""",
        -2.5: """disappointed, disappointing, disappointment, rude, angry, unhelpful, incompetent,
            ridiculous, upset, poor, useless, rubbish, trash, unprofessional, lied, liar,
            unhappy, dissatisfied, unsatisfied, suck""",
        -3.0: """worst, terrible, horrible, awful, horrendous, disgusting, disgusted, unacceptable,
            appalling, atrocious, pathetic, scam, scammed, fraud, rip off, ripoff, hate, hated,
            never again, waste of money, waste of time, disaster, nightmare, furious, garbage,
            sucks""",
    },
    "pt": {
        3.0: """ótimo, ótima, ótimos, ótimas, excelente, excelentes, perfeito, perfeita,
            maravilhoso, maravilhosa, maravilha, incrível, sensacional, adorei, amei, adoro, amo,
            amando, fantástico, fantástica, espetacular, impecável, nota 10, nota dez""",
        2.5: "parabéns",
        2.0: """bom, boa, bons, boas, gostei, legal, satisfeito, satisfeita, feliz, recomendo,
            recomendado, recomendada, atencioso, atenciosa, atenciosos, atenciosas, prestativo,
            prestativa, prestativos, eficiente,
            top, melhor, gentil, simpático, simpática, confiável, show de bola, dentro do prazo,
            antes do prazo, vale a pena""",
        1.5: """gosto, rápido, rápida, rápidos, rápidas, rapidez, ágil, agilidade, fácil, útil,
            resolvido, resolvida, resolveu, resolveram, no prazo, certinho, educado, educada,
            bacana, lindo, linda, agradeço""",
        1.0: "obrigado, obrigada, obg, valeu, vlw, bem, beleza, prático, tranquilo",
        0.0: """bom dia, boa tarde, boa noite, a tarde, de tarde, mais tarde, boa parte""",
        -1.0: "problema, problemas, caro, esperando, aguardando",
        -1.5: """demorou, demora, demorado, demorada, demorando, lento, lenta, lentidão, errado,
            errada, difícil, complicado, complicada, confuso, confusa, faltando, faltou,
            perdido, perdida, sumiu, erro, falha, bug, travando, travou, trava, triste, chato,
            chata, reclamar, não consigo, urgente, tarde""",
        -2.0: """ruim, ruins, mal, má, atrasado, atrasada, atrasados, atrasou, atraso, atrasos,
            quebrado, quebrada, quebrou, danificado, danificada, defeito, defeituoso,
            extraviado, irritado, irritada, chateado, chateada, frustrado, frustrada, mentira,
            ainda esperando, tarde demais, sem noção""",
        -2.5: """decepcionado, decepcionada, decepção, decepcionante, insatisfeito, insatisfeita,
            grosseiro, grosseira, grosseria, mal educado, mal educada, raiva, enganado,
            enganada, absurdo, ridículo, descaso, lamentável, sacanagem, roubo""",
        -3.0: """péssimo, péssima, péssimos, péssimas, horrível, horríveis, terrível, terríveis,
            lixo, nunca mais, pior, piores, vergonha, golpe, fraude, desrespeito, enganação,
            roubada, odeio, odiei, ódio, porcaria, desastre""",
    },
    "es": {
        3.0: """excelente, excelentes, fantástico, fantástica, perfecto, perfecta, maravilloso,
            maravillosa, increíble, increíbles, espectacular, estupendo, estupenda, fenomenal,
            encanta, encantó, me encanta""",
        2.5: "encantado, encantada, genial, lo mejor, de lujo",
        2.0: """bueno, buena, buenos, buenas, gusta, gustó, me gusta, satisfecho, satisfecha,
            contento, contenta, recomiendo, recomendable, amable, amables, mejor, agradable,
            confiable, vale la pena""",
        1.5: """rápido, rápida, rápidos, rápidas, fácil, útil, bien, ayudó, resuelto, resuelta,
            solucionado, solucionaron, resolvieron, a tiempo, puntual, atento, atenta, atentos,
            agradezco""",
        1.0: "gracias, agradecido, agradecida",
        0.0: """buenos días, buenas tardes, buenas noches, la tarde, esta tarde, más tarde""",
        -1.0: "problema, problemas, caro, esperando",
        -1.5: """lento, lenta, tarde, retrasos, tardó, tardaron, demora, equivocado, equivocada,
            incompleto, incompleta, difícil, complicado, confuso, error, falla, fallo, urgente,
            no puedo""",
        -2.0: """malo, mala, malos, malas, retraso, retrasado, retrasada, demoró, roto,
            rompió, dañado, dañada, defectuoso, defectuosa, molesto, molesta, sigo esperando,
            engaño, mal, mentira, frustrado, frustrada""",
        -2.5: """decepcionado, decepción, decepcionante, insatisfecho, insatisfecha, grosero,
            grosera, maleducado, maleducada, enojado, enojada, enfadado, enfadada, harto, harta,
            fatal, vergüenza, lamentable""",
        -3.0: """pésimo, pésima, pésimos, pésimas, horribles, terribles, basura, nunca más,
            peor, lo peor, estafa, estafadores, asco, un asco, fraude, desastre, robo, odio""",
    },
    "zh": {
        3.0: """完美, 超赞, 太棒, 五星, 惊艳, 极好, 一流, 出色, 优秀, 爱死, 惊喜, 物超所值""",
        2.0: """好评, 满意, 喜欢, 爱, 棒, 赞, 不错, 推荐, 专业, 耐心, 热情, 贴心, 周到, 给力, 靠谱,
            好用, 实惠, 超值, 开心, 高兴, 感动, 顺利, 解决了, 已解决, 友好, 礼貌, 细心, 负责,
            认真, 舒服, 放心, 精美, 漂亮, 值得, 划算, 优质, 完好, 好, 快乐, 好吃, 好看, 好喝""",
        1.5: """快, 及时, 准时, 方便, 简单, 容易, 清楚, 有用, 有帮助, 帮助, 感谢, 迅速, 高效, 省心,
            流畅, 稳定, 可爱, 解决""",
        1.0: "谢谢, 多谢, 没问题",
        0.5: "还好, 还行, 可以",
        0.0: """你好, 您好, 好的, 好像, 好几, 好多, 好些, 刚好, 正好, 只好, 最好, 好久, 好奇,
            好友, 爱好, 快递, 赶快, 差不多, 出差, 差点, 差价, 不好意思, 不客气, 不用谢, 不少,
            不同, 不知道, 不管, 不断, 不久, 不停, 不用, 没事, 没关系, 无论, 未来, 别人, 区别,
            分别, 类别, 性别, 级别, 告别, 贵公司, 贵司, 客气""",
        -0.5: "一般",
        -1.0: "问题, 贵, 尽快, 快点, 着急",
        -1.5: """慢, 错误, 失败, 无法, 不能, 没法, 无效, 麻烦, 无聊, 催, 焦虑, 延迟, 拖延""",
        -2.0: """差, 差评, 烂, 坏, 坏了, 破损, 损坏, 破了, 碎了, 漏发, 少发, 发错, 错发, 丢件,
            丢了, 丢失, 没用, 没有用, 难用, 卡顿, 闪退, 崩溃, 死机, 故障, 不好用, 不行, 迟到, 延误,
            还没到, 没到, 等了好久, 等了很久, 一直等, 等太久, 太久, 不值, 过期, 变质, 发霉,
            脏, 臭, 郁闷, 不爽, 傻眼, 踩雷, 打不开, 用不了, 登不上, 连不上, 联系不上, 打不通,
            收不到, 很扯, 太扯""",
        -2.5: """失望, 生气, 态度差, 态度恶劣, 不满意, 不满, 糟糕, 讨厌, 后悔, 无语, 坑, 骗,
            敷衍, 推卸, 踢皮球, 没人理, 没人管, 没人回复, 不理人, 爱理不理, 不会再, 品质很差""",
        -3.0: """最差, 最烂, 垃圾, 太差, 差劲, 糟透, 骗子, 诈骗, 欺诈, 坑人, 黑心, 恶心, 气死,
            愤怒, 太烂, 再也不, 极差, 恶劣, 无良, 骗钱, 假货, 烂透""",
    },
}

# Complaint topics: as negative under a negation as without one ("still no refund").
COMPLAINTS: dict[str, dict[float, str]] = {
    "en": {
        -2.0: """cancel, cancelled, canceled, cancellation, cancelling, canceling, complaint,
            complaints, unsubscribe""",
        -2.5: """refund, refunds, money back, overcharged, chargeback, charged twice,
            double charged, double charge, charged me twice""",
    },
    "pt": {
        -2.0: """reclamação, cancelar, cancelamento, cancelei, cancelado, cancelada, cancele,
            devolução""",
        -2.5: """reembolso, reembolsar, estorno, estornar, estornem, devolver o dinheiro,
            dinheiro de volta, cobrado duas vezes, cobraram duas vezes, cobrança duplicada,
            cobrança indevida, cobrança em dobro, paguei duas vezes, procon, reclame aqui""",
    },
    "es": {
        -2.0: """queja, quejas, reclamo, reclamación, cancelar, cancelado, cancelada, cancelación,
            devolución""",
        -2.5: """reembolso, reembolsen, devuelvan, devolver el dinero, cobraron dos veces,
            cobro doble, doble cobro, cobro duplicado, cargo duplicado, cobro indebido,
            me cobraron de más, profeco""",
    },
    "zh": {
        -2.0: "退货, 换货, 取消, 举报, 退单, 维权",
        -2.5: """退款, 退钱, 投诉, 赔偿, 扣了两次, 扣两次, 扣款两次, 重复扣款, 重复收费, 收了两次,
            多扣, 乱扣""",
    },
}

# What a customer expected to happen: neutral alone, a complaint when negated ("never arrived").
EXPECTED: dict[str, dict[float, str]] = {
    "en": {
        -2.0: """arrive, arrived, arrives, arriving, came, come, received, receive, delivered,
            deliver, shipped, ship, work, works, worked, working, respond, responded, responds,
            response, reply, replied, replies, answer, answered, answers, refunded, load, loads,
            loading, open, opens, show, showed, called back, get back, got back, sent""",
    },
    "pt": {
        -2.0: """chegou, chegaram, chega, chegar, recebi, recebeu, recebido, recebemos, receber,
            funciona, funcionou, funcionando, funcionar, respondeu, responderam, responde,
            respondem, resposta, retorno, entregue, entregaram, entregou, atende, atendem,
            atenderam, atendeu, abre, carrega, veio, apareceu""",
    },
    "es": {
        -2.0: """llegó, llegaron, llega, llegado, llegar, recibí, recibido, recibimos, funciona,
            funcionó, funcionando,
            sirve, respondió, respondieron, responden, respuesta, contesta, contestan, contestaron,
            contestó, entregaron, entregado, atienden, atendieron, carga""",
    },
    "zh": {
        -2.0: """收到, 到货, 送到, 送达, 发货, 回复, 回应, 答复, 处理, 联系, 到账, 通知, 响应, 接听,
            生效, 显示, 修好, 修复, 兑现""",
    },
}

# Words that negate what follows. The weight is what a negator scores when nothing follows it to
# negate: "I can't log in" is a complaint even though "log in" is no sentiment word.
NEGATORS: dict[str, dict[float, str]] = {
    "en": {
        0.0: """not, never, nothing, nobody, no one, none, neither, nor, without, hardly, barely,
            don't, doesn't, didn't, isn't, aren't, wasn't, weren't, won't, wouldn't, shouldn't,
            haven't, hasn't, hadn't, ain't, dont, doesnt, didnt, isnt, arent, wasnt, werent,
            wouldnt, havent, hasnt, hadnt""",
        -1.0: "can't, cannot, cant, couldn't, couldnt",
    },
    "pt": {0.0: "não, nunca, nem, nada, ninguém, sem, jamais, nenhum, nenhuma"},
    "es": {0.0: "nunca, ni, nadie, sin, jamás, tampoco, ningún, ninguno, ninguna"},
    "zh": {
        0.0: """不, 没, 没有, 未, 无, 别, 不是, 不太, 不够, 不怎么, 从未, 从不, 从没, 毫无,
            未能, 尚未, 并非, 并不, 绝不, 还没, 还没有""",
    },
}

# "no" negates only the next word or a verb behind clitics ("no me llegó", "no lo recomiendo"):
# in Portuguese it also means "in the" ("no app foi ótimo"), which must not negate anything.
SHORT_NEGATORS = "no"
SHORT_NEGATOR_BRIDGES = """me, te, se, le, les, lo, la, los, las, nos, os, ha, han, he, has, hemos,
    había, hay, es, era, fue, está, están, estaba, muy, longer, more"""

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

# After one of these, the clause that follows counts half again: "great app but late delivery".
# Portuguese "mas" is left out: folded, it is also Spanish "más" (more).
CONTRASTS: dict[str, str] = {
    "en": "but, however",
    "pt": "porém, contudo, entretanto, no entanto, só que",
    "es": "pero, sin embargo, no obstante",
    "zh": "但是, 但, 可是, 不过, 然而, 却",
}

EMOJI: dict[float, str] = {
    3.0: "😍, 🥰, 🤩",
    2.5: "❤, 💕, 💖, 💗",
    2.0: "😀, 😃, 😄, 😁, 😊, 😘, 👍, 👏, 🙌, 🎉, 💯, ♥, 💙, 💚, 💛, 💜, 🧡, 🥳, :d, :-d, <3",
    1.5: "👌, :), :-), =)",
    1.0: "🙂, 😎, 🙏, ⭐, 🌟, ;), ;-)",
    -1.0: "😕, 😑",
    -1.5: "😒, 🙁, ☹, 😣, 😔, 🤦, :(, :-(",
    -2.0: "😤, 😞, 😢, 😭, 😩, 😫, 😖, 🤢, 💔, :'(",
    -2.5: "😠, 👎, 💩, 🤮",
    -3.0: "😡, 🤬",
}

# Simplified character, then its traditional forms (the character itself too where traditional
# text also uses it). Only characters that occur in the Chinese lists above are needed.
SIMPLIFIED_TO_TRADITIONAL = """
    说說 没沒 无無 还還 钱錢 坏壞 态態 满滿 谢謝 货貨 递遞 迟遲 烂爛 赞讚贊 让讓 买買 卖賣
    质質 价價 贵貴 骗騙 难難 应應 复復複覆 处處 决決 务務 费費 发發 单單 号號 机機 们們 这這
    个個 来來 时時 间間 问問 题題 后後 从從 过過 与與 么麼 会會 对對 开開 关關 气氣 愤憤 误誤
    错錯 点點 电電 话話 线線 网網 页頁 载載 闪閃 当當 软軟 体體 实實 优優 专專 业業 热熱 贴貼
    顺順 礼禮 简簡 谱譜 给給 划劃划 惊驚 欢歡 爱愛 评評 荐薦 极極 别別 并並 够夠 几幾 刚剛
    见見 劲勁 讨討 厌厭 烦煩 损損 丢丟 联聯 系系繫係 络絡 两兩 诉訴 溃潰 顿頓 兴興 恶惡噁 购購
    订訂 连連 录錄 账賬帳 尽盡儘 赶趕 该該 请請 样樣 吗嗎 总總 验驗 脏髒臟 旧舊 亏虧 诈詐 码碼
    装裝 输輸 赔賠 偿償 换換 补補 员員 帮幫 细細 准準 变變 馈饋 诚誠 资資 续續 邮郵 报報 举舉
    维維 权權 乱亂 额額 导導 户戶 虽雖 却卻 达達 终終 于于於 诺諾 兑兌 现現 响響 显顯 试試 进進
    库庫 语語 听聽 动動 负負 责責 认認 畅暢 稳穩 断斷 论論 区區 类類 级級 蛮蠻 较較 绝絕 乐樂
    艳豔艷 严嚴 郁鬱 闷悶 着著 虑慮 属屬 测測 头頭 边邊 钟鐘 败敗
"""
