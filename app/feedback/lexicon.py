"""The word lists behind `app.feedback.classify.classify_text`: data only. The words that
change how others count (negators, intensifiers, contrasts) are in `lexicon_modifiers.py`.

Terms are written as people type them (accents, capitals, simplified Chinese); `lexicon_index`
folds them exactly as a comment is folded, so "Péssimo" here matches "pessimo" there. Each
block maps a weight to comma-separated terms; a Latin-script term may be a phrase of several
words. A term may appear in two languages (Portuguese and Spanish share many) but only with the
same weight and kind: `lexicon_index` refuses to load a lexicon that contradicts itself.

Chinese is written once, in simplified characters: `classify` reads traditional text as
simplified (OpenCC), so 态度差 also finds 態度差. A term written in traditional characters is
folded to simplified too, so it still matches, but it would be listed twice if also written in
simplified: write simplified.

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
            amando, fantástico, fantástica, espetacular, impecável, nota dez""",
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
        0.0: """bom dia, boa tarde, boa noite, a tarde, de tarde, mais tarde, boa parte,
            nota fiscal""",
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
        0.0: """buenos días, buenas tardes, buenas noches, la tarde, esta tarde, más tarde,
            misma tarde, por la tarde, esa tarde""",
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

# What went right, told without a praise word or through a negation: "no complaints", "can't
# fault it", "a day early", 没毛病, 提前. Praise, turned around by a negation like TERMS.
GOOD_NEWS: dict[str, dict[float, str]] = {
    "en": {
        1.0: "sure, lovely, wow",
        2.0: """no complaints, nothing to complain about, can't fault, no tricks, respect, early, a
            day early, thorough, fair, honest, not a single, never let down, don't regret, no
            issues, no fuss, without any fuss, no hassle, worth the wait, don't hesitate, no
            need, painless, spot on, like new, looks new, in one piece, sealed, intact, as
            promised, as described, exactly, order again, shop here again, didn't rush, came
            through, renewed, seals tight, no spills, one click, refund came through, refund
            came, was reversed, explained""",
    },
    "pt": {
        1.0: "claro, que lindo, que beleza",
        2.0: """sem reclamações, nada a reclamar, do que reclamar, nunca me decepcionaram, não me
            arrependo, sem complicação, sem enrolação, sem burocracia, valeu a espera, como
            novo, novinho, novinha, inteiro, lacrado, conforme prometido, exatamente, comprar de
            novo, compraria, não me apressou, me surpreendeu, respeito, justa, justo, honesto,
            honesta, cuidadosa, estável, nenhum travamento, veda bem, caiu na mesma, antes do
            previsto, antes de chegar, renovei, com certeza, vale o que custa, ajudou, estorno
            caiu, reembolso caiu, foi estornada, foi estornado, não tenho do que reclamar, um
            dia antes, explicou""",
    },
    "es": {
        1.0: "claro, precioso, qué bien",
        2.0: """sin quejas, ninguna queja, nada que objetar, nunca me han fallado, no me
            arrepiento, sin líos, sin trampas, sin complicaciones, valió la pena, como nuevo,
            entero, precintado, como prometieron, exactamente, volvería, volveré, chapó, justos,
            justo, honesto, con cuidado, estable, ni un cierre, ni un corte, hermética, renové,
            de diez, no me apuró, me sorprendió, sin duda, vale lo que cuesta, reembolso llegó,
            lo anularon, anularon, un día antes, explicó, conforme""",
    },
    "zh": {
        1.0: "厉害",
        2.0: """没什么可抱怨, 没什么好抱怨, 没什么好挑剔, 无可挑剔, 没毛病, 不后悔, 提前, 提早,
            一分钱一分货, 不输, 跟新的一样, 完好, 完整, 没有任何, 一样准时, 不用我催, 一键,
            没有套路, 续了, 续约, 又给, 又帮, 讲明白, 说明, 不到一分钟, 好多了, 改善,
            跟套餐说的一样, 一次都没, 人也不多, 很正常, 不赶我, 说的一样, 退了差价, 良心""",
        3.0: """入账, 入帐, 退回来, 退给我了""",
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

# Problems told without a negative word: what broke, what went missing, what keeps happening,
# how long it took, whom the customer had to chase. As negative under a negation as without one.
PROBLEMS: dict[str, dict[float, str]] = {
    "en": {
        -1.0: """again, still, every time, every single, keeps, keep, kept, instead of, why, hold,
            on hold, for weeks, all day, all morning, all week, chase, chasing, had to, have to,
            three times, four times, five times, someone else's, just tell me, seriously,
            expected better, would be nice if, is it normal, not ok, not okay, it's been, been
            waiting, since, weeks, a month, went up, charged, fee, fees, scared, please
            fix, fix the, too many, hours, an hour""",
        -2.0: """crushed, cracked, in pieces, smashed, torn, tear, ripped, stopped working, stopped
            charging, fell off, came off, unglued, peeled, chipped, faded, shrank, shrunk,
            leaks, leaking, leak, spills, spill, drains, stuck, declined, hung up, hang up,
            dropped out, drops out, down, out of order, overcrowded, burnt, burned, hair in,
            fingerprints, clearly used, double billed, billed twice, no warning, without
            warning, no explanation, without any explanation, no product, took my money, lose,
            losing, logs me out, froze, freezes, freezing, deleted, disappeared, wrong item,
            wrong size, joke, maze, unusable, not even, didn't even, doesn't even, can't even,
            dim, noisy, smells of, smell of, rash, chemicals, fake, counterfeit, empty box, not
            what i ordered, not what i paid for, throw, threw, dumped, locked, blocked, lied to,
            copy paste, copy-paste, automated             reply, someone else, fault, nobody
            came, no show, cold when, refused, denied, scratched, dented, dent, expired, mouldy,
            moldy, stale, soggy, overcooked, undercooked, spoiled, rotten, flimsy, doesn't fit,
            too small, too big, hidden fees, hidden charges, spam, spammed, runaround, run
            around, passed around, laggy, glitchy, unstable, timed out, logged out, wiped,
            overheats, overheating, dies, died, dead, won't turn on, won't charge, no reply, no
            answer, unreachable, mistake, incorrect, inaccurate""",
        -1.5: """wrong city, arrived after""",
    },
    "pt": {
        -1.0: """de novo, outra vez, ainda, até agora, toda vez, toda hora, cada vez, por que,
            cadê, sério, espera, na espera, esperava mais, tive que, tenho que, três vezes,
            cinco vezes, faz uma semana, há semanas, semanas, um mês, subiu, taxa, cobraram,
            cobrado, cobrada, cobrou, mal dura, sei lá, passo demais, demais, vive, só me, dá
            erro, em vez de, seria ótimo se, e nada, segunda vez, mesmo depois, descadastrei, só
            quero, culpa, medo, esquenta, já faz, mais uma, é normal""",
        -2.0: """amassado, amassada, trincado, trincada, rasgado, rasgo, parou de funcionar, parou
            de carregar, soltou, descolou, descascou, desbotou, encolheu, vaza, vazando, vazou,
            travado, travada, recusado, recusada, desligou, desligaram, caiu, fora do ar,
            lotada, lotado, queimada, queimado, cabelo, usado, marca de dedo, em dobro, sem
            aviso, sem explicação, nada do produto, pegaram meu dinheiro, perco, perdi,
            perderam, apagou, sumiram, item errado, piada, labirinto, inútil, escura, barulho,
            cheiro de, alergia, falsificado, caixa vazia, jogou, bloqueada, bloqueado, mentiram,
            resposta pronta, resposta automática, outra pessoa, lerdo, lerda, grosso, grossa,
            vagabundo, vagabunda, cansei, bagunça, fria, frio, à             toa, enrolação,
            burocracia, revoltado, revoltada, acaba com, cortaram, apareceu duas
            vezes, arranhado, arranhada, amassou, vencido, vencida, estragado, estragada,
            mofado, podre, cru, crua, não serve, taxa escondida, spam, enrolaram, empurra, jogo
            de empurra, transferiram, desconectando, superaquece, morreu, não liga, não carrega,
            sem resposta, ninguém responde, ninguém atende, incorreto, incorreta""",
        -1.5: """não dá, outra cidade, chegou depois""",
    },
    "es": {
        -1.0: """otra vez, de nuevo, todavía, sigo, sigue sin, cada vez, por qué, dónde está, en
            serio, en espera, esperaba más, tuve que, tengo que, tres veces, cinco veces, hace
            un mes, semanas, un mes, subieron, comisión, cobraron, cobrado, me cobró, apenas,
            pues nada, demasiados, en vez de, estaría bien que, todo el rato, y nada, ni
            siquiera, a día de hoy, segunda vez, aunque me di de baja, solo quiero, culpa,
            miedo, calienta tanto, cero, ya pasó, faltó, es normal, díganme""",
        -2.0: """aplastada, aplastado, rajada, rajado, desgarro, rota, rotos, rotas, dejó de
            funcionar, dejó de cargar, se soltó, se despegó, se saltó, desteñió, encogió, gotea,
            se cuelga, se colgó, se cierra, rechazada, rechazado, colgó, colgaron, se cayó,
            caída, a reventar, quemada, quemado, un pelo, usado, huellas, por duplicado, sin
            avisar, sin explicación, se quedaron con mi dinero, pierdo, perdieron, borró,
            desaparecieron, chiste, laberinto, no sirve, oscura, ruido, huele a, sarpullido,
            falsificado, caja vacía, tiró, bloquearon, mintieron, texto             copiado,
            respuesta automática, otra persona, me harté, inservible, asqueroso, indignó, vaya
            tela, por dios, fría, frío, destroza, un             desastre, no hay forma,
            quitaron, apareció dos veces, no vale, rayado, rayada, abollado, caducado, caducada,
            podrido, podrida, crudo, cruda, no me queda, cargos ocultos, de un lado a otro, me
            transfirieron, se traba, va lento, se sobrecalienta, murió, no enciende, no carga,
            sin respuesta, nadie contesta, nadie responde, incorrecto, incorrecta""",
        -1.5: """otra ciudad, llegó después""",
    },
    "zh": {
        -1.0: """又, 还在, 到现在, 至今, 每次, 一直, 老是, 总是, 为什么, 到底, 凭什么, 难道, 排队,
            等了, 才到, 才来, 三次, 五次, 一个月, 星期了, 涨价, 涨了, 手续费, 多收, 都没有, 就行了,
            就好了, 不是吧, 根本, 居然, 竟然, 结果, 说好, 号称, 以为会更好, 而不是, 只有, 只收到,
            好多步, 服了, 受够, 比登天还难, 就这种, 就这么, 凭啥, 降价, 只会说, 就这样""",
        -2.0: """压扁, 裂了, 破洞, 坏的, 不能用, 掉了, 开胶, 掉漆, 掉色, 褪色, 缩水, 漏水, 洒了,
            卡死, 卡在, 卡得, 被拒, 挂我电话, 挂了, 断网, 断线, 烤糊, 烧焦, 头发, 指纹, 用过的,
            重复扣, 没通知, 莫名其妙, 没给, 弄丢, 丢一次, 删了, 没了, 寄错, 笑话, 噩梦, 恶梦,
            没法用, 耗电, 暗, 噪音, 化学味, 味道, 起疹子, 过敏, 空盒, 白等, 扔, 锁了, 复制粘贴,
            自动回复, 别人的, 破, 智商税, 凉了, 离谱, 扯, 太贴心了, 什么忙都, 闪, 退出登录,
            上传不了, 充不进, 撑不到, 做不到, 没散, 系统繁忙, 少了, 多了一笔, 销户, 刁难, 脱胶,
            断了, 瑕疵, 上错, 缩了, 登不进, 好一个, 划痕, 磕碰, 夹生, 偏小, 偏大, 隐形消费, 乱收费,
            推来推去, 转来转去, 掉线, 发烫, 过热, 开不了机, 充不上电, 黑屏, 白屏, 没反应, 不回,
            已读不回, 少件, 缺件""",
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
            funcionó, funcionando, sirve, respondió, respondieron, responden, respuesta, contesta,
            contestan, contestaron, contestó, entregaron, entregado, atienden, atendieron, carga,
            funcionan, hace, cierra, sirven, abre""",
    },
    "zh": {
        -2.0: """收到, 到货, 送到, 送达, 发货, 回复, 回应, 答复, 处理, 联系, 到账, 通知, 响应, 接听,
            生效, 显示, 修好, 修复, 兑现""",
    },
}

# Sarcasm: praise said to mean its opposite. Besides these phrases, `classify` reads a short
# opening of praise before a complaint ("Great, another late delivery") as sarcasm.
SARCASM: dict[str, dict[float, str]] = {
    "en": {-3.0: "thanks for nothing, yeah right, love how, love that i have to, just great"},
    "pt": {-3.0: "obrigado por nada, obrigada por nada, valeu por nada, adoro ter que"},
    "es": {-3.0: "gracias por nada, me encanta tener que"},
    "zh": {-3.0: "呵呵, 谢谢你们什么都没做"},
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
