"""Words that mean the same in answers about videos: English synonyms (``shuts`` / ``closes``, ``kid`` / ``child``,
``bike`` / ``bicycle``), a word and the kind it is (``carrots`` -> ``vegetable``), and the common words of video
questions in Spanish, French, German, Portuguese, Italian, Russian, Chinese, Japanese and Korean
(``gato`` / ``猫`` -> ``cat``).

:func:`concepts` reads a text (an option, or a clause of an answer) as a set of concepts, so that an answer that
paraphrases or translates an option's content can be compared with the options by
:func:`savi_plugin.data.choices._by_meaning` (rule 5 of :mod:`savi_plugin.data.choices`). A concept is an English
word's stem (:func:`stem`); a word the table does not know stands for itself, so an answer that repeats an option's
own words matches without the table.

The table covers the vocabulary of the papers' benchmarks (people, animals, vehicles, household objects, food,
colours, directions and the everyday actions of MVBench, NExT-QA, PerceptionTest and EgoSchema); a word missing from
it makes an answer unparsed, never another option's.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

#: ``concept: forms``, one concept a line. A form is an English word (any inflection matches: :func:`stem`), a
#: word of another language (accents ignored; ``*`` ends a stem that matches any ending), a phrase (``_`` between
#: its words), or a Chinese/Japanese/Korean word (found inside running text). A concept of several words
#: (``ride bicycle``) stands for all of them.
_TABLE = """
man: men guy gentleman male hombre hombres homme hommes mann manner maenner homem homens uomo uomini мужчин* мужик*
 男人 男子 男性 男的 男の人 남자 남성
woman: women lady ladies female mujer mujeres femme femmes frau frauen mulher mulheres donna donne женщин* девушк*
 女人 女子 女性 女的 女の人 여자 여성
child: kid kids children +boy +boys +girl +girls toddler nino nina ninos ninas enfant enfants garcon kinder
 kindern ein_kind das_kind einem_kind dem_kind crianca criancas menino menina bambino bambina bambini ребен* ребён* дети детей мальчик* девочк*
 孩子 小孩 儿童 男孩 女孩 子供 子ども 男の子 女の子 아이 어린이 소년 소녀
person: someone somebody people persona personas personne personnes mensch menschen pessoa pessoas человек* люди
 人物 사람
baby: infant bebe baby 婴儿 赤ちゃん 아기
customer: shopper buyer client cliente clientes kunde kunden клиент* покупател* 顾客 客人 お客 손님 고객
cashier: clerk checkout cajero cajera caissier caissiere kassierer kassiererin caixa кассир* 收银员 店员 レジ 계산원
teacher: instructor profesor profesora maestro maestra professeur lehrer lehrerin professor учител* 老师 教师 先生
 선생님
student: pupil estudiante alumno eleve etudiant schuler schueler aluno studente ученик* студент* 学生 生徒 학생
doctor: physician medico medecin arzt arztin врач* 医生 医者 의사
patient: paciente patient patientin paziente пациент* 病人 患者 환자
father: dad daddy padre papa pere vater vati pai отец отца отцом папа 父亲 爸爸 お父さん 아버지 아빠
mother: mom mum mommy madre mama mere mutter mae мать мама 母亲 妈妈 お母さん 어머니 엄마
son: hijo sohn filho figlio сын* 儿子 息子 아들
c: camera_wearer the_wearer
dog: puppy perro perros chien chiens hund hunde cachorro cao caes cane собак* пёс пес щен* 狗 犬 강아지
cat: kitten gato gatos chatte katze katzen gatto кошк* кот котёнок котенок 猫 고양이
bird: pajaro pajaros oiseau vogel passaro uccello птиц* 鸟 鳥
horse: caballo cheval pferd cavalo cavallo лошад* конь 马 馬
car: vehicle automobile auto coche carro voiture wagen automovil macchina машин* автомобил* 汽车 车子 小汽车 轎車 자동차
bicycle: bike cycle cyclist bicicleta bicicletas velo fahrrad rad bicicletta велосипед* 自行车 单车 脚踏车 自行車 自転車 자전거
motorcycle: motorbike moto motocicleta motorrad мотоцикл* 摩托车 バイク 오토바이
bus: autobus omnibus onibus автобус* 公交车 公共汽车 巴士 バス 버스
truck: lorry camion lkw caminhao грузовик* 卡车 货车 トラック 트럭
door: puerta puertas porte portes tur tuer porta двер* 门 ドア 扉 문을 문이 문에
window: ventana fenetre fenster janela finestra окн* окно 窗 窗户 窓 창문
table: desk mesa mesas tisch tavolo стол* 桌子 桌 テーブル 탁자 테이블 책상
chair: seat silla chaise stuhl cadeira sedia стул* 椅子 의자
sofa: couch sillon canape kanapee divan диван* 沙发 ソファ 소파
bed: cama bett letto кроват* 床 ベッド 침대
cup: +mug +glass taza vaso tasse verre becher copo tazza bicchiere чашк* кружк* стакан* 杯子 杯 カップ コップ 컵 잔
bottle: botella bouteille flasche garrafa bottiglia бутылк* 瓶子 瓶 ボトル 
plate: +dish +bowl plato platos assiette teller prato piatto тарелк* 盘子 碗 皿 お皿 접시 그릇
knife: cuchillo couteau messer faca coltello нож* 刀 刀子 ナイフ 包丁 칼
phone: smartphone cellphone cell mobile telephone telefono telefone telefon handy telefonino телефон* 手机 电话 電話 携帯 スマホ 전화 휴대폰
book: libro livre buch livro книг* 书 书本 책
ball: pelota balon balle ballon kugel bola palla мяч* 球 ボール
box: caja boite kiste karton caixa scatola коробк* ящик* 盒子 箱子 箱 상자
bag: bolsa sac tasche sacola borsa сумк* 包包 书包 背包 手提包 袋 バッグ 가방
umbrella: paraguas parapluie regenschirm guarda-chuva ombrello зонт* 伞 雨伞 傘 우산
suitcase: luggage maleta valise koffer mala valigia чемодан* 行李箱 スーツケース 여행가방
laptop: notebook portatil ordinateur_portable ноутбук* 笔记本电脑 ノートパソコン 노트북
television: tv televisor television fernseher televisao televisore телевизор* 电视 テレビ 텔레비전
guitar: guitarra guitare gitarre chitarra гитар* 吉他 ギター 기타
piano: klavier pianoforte пианино фортепиано 钢琴 ピアノ 피아노
violin: violon geige violino скрипк* 小提琴 バイオリン ヴァイオリン 바이올린
drum: drums bateria batterie schlagzeug tambor tamburo барабан* 鼓 ドラム 드럼
kite: cometa cerf-volant drachen pipa aquilone воздушн*_зме* 风筝 凧
flower: flowers blossom bouquet bunch_of_flowers flor flores fleur fleurs blume blumen fiore fiori цветы цветок цветами
 цветов ramo strauss blumenstrauss buque mazzo букет* 花 花束 꽃 꽃다발
fridge: refrigerator refrigerador nevera frigo refrigerateur kuhlschrank geladeira frigorifero холодильник* 冰箱 冷蔵庫 냉장고
pot: saucepan olla casserole topf panela pentola кастрюл* 锅 鍋 냄비
water: agua eau wasser acqua вод* 水
vegetable: vegetables veggie veggies +carrot +carrots +pepper +peppers +onion +onions +tomato +tomatoes +potato +potatoes
 +lettuce +cucumber verdura verduras legume legumes gemuse gemuese овощ* 菜 蔬菜 野菜 채소 야채
fruit: fruits +apple +apples +banana +bananas +orange +oranges +grape +grapes fruta frutas obst frutta фрукт* 水果 果物 과일
pole: post lamppost poste pfosten palo столб* 杆 柱子 电线杆 電柱 기둥
street: road avenue carretera rue strasse rua strada улиц* дорог* 街 马路 道路 街道 通り 거리 도로
house: home casa maison haus дом* 房子 住宅
kitchen: cocina cuisine kuche cozinha cucina кухн* 厨房 台所 キッチン 부엌 주방
floor: ground suelo boden chao pavimento пол 地板 地面 바닥
tree: arbol arbre baum arvore albero дерев* 树 나무
climate change: klimawandel cambio_climatico changement_climatique mudanca_climatica cambiamento_climatico
 изменени*_климат* 气候变化 気候変動 기후변화
open: opening abre abrir abriendo ouvre ouvrir ouvert offnet oeffnet offnen abriu aperto apre apri открыва* открыт*
 открыл* открой 打开 开门 開け 開く 開ける 열고 엽니다 열어
close: shut closing cierra cerrar cerrando ferme fermer schliesst schliessen fecha fechar chiude chiudere закрыва*
 закрыл* закрой 关上 关门 关闭 閉め 閉じ 閉める 닫 닫습니다 닫고
knock: tap*_on tap*_at tap*_on_the_door knuckles golpea tocando frappe frapper klopft klopfen bate batendo bussa стуч* постуч*
 敲 敲门 ノック 叩 두드 노크
lock: locks cerradura cierra_con_llave verrouille abschliesst tranca chiude_a_chiave запира* запер* 锁 锁上 鍵を掛け
 鍵をかけ 施錠 잠그 잠급 잠가 잠갔
walk: stroll strolling walking camina caminando pasea paseando promene promener marche geht spazieren anda andando
 passeia cammina passeggia гуля* идет идёт 走 散步 遛 歩 散歩 걷 걸어 산책
run: jog jogging sprint corre corriendo courir lauft rennt corre correndo бег* бежит 跑 走る 달리 뛰
sit: seated sitting sentado sienta assis setzt sitzt sentada siede сид* сел 坐 座っ 座る 앉
stand: standing de_pie debout steht em_pe in_piedi стоит стоят 站 立って 
fall: trip tripped tumble fall_down fell_down hit_the_ground cae cayo cayendo tombe tomber fallt sturzt cai caiu cade
 упал* пада* 摔 摔倒 跌倒 転ん 転ぶ 転倒 넘어
ride: riding rides montando monta conduciendo fahrt faehrt andando_de pedala cavalca едет катает* 骑 乗 타고 탑니다
drive: driving conduce conduit dirige guida водит* 开车 運転 운전
park: parked estacionado aparcado gare geparkt parcheggiata припаркован* 停着 停在 駐車 주차
hit: crash crashes crashed strike strikes collide bump choca heurte percute prallt colpisce врезал* удар*
 撞 ぶつか 衝突 부딪 충돌
throw: toss tira lanza lance jette wirft joga lancia бросае* брос* 扔 投 던지
catch: atrapa attrape fangt afferra лови* 捕ま 잡
hold: holding sostiene tient segura держ* 拿 持って 들고
carry: carrying lleva tragt carrega нес* 拿着 搬 운반
pick_up: pick*_up pick*_it_up lift levanta levantando souleve ramasse 拿起 捡起 持ち上げ recoge ramasse hebt pega raccoglie поднима* 捡 拾 줍
put_down: put*_down put*_it_down set*_down plac*_down deja legt coloca posa кладе* полож* 放下 놓
eat: eating comiendo mange isst comendo mangia ест 吃 食べ 먹
drink: drinking bebe bebiendo boit trinkt bevendo beve пьет пьёт 喝 飲 마시
cook: cooking cocina cocinando cuisine kocht cozinha cucina готовит* 做饭 烹饪 料理 요리
chop: cut slice dice chopping cutting slicing corta cortando coupe couper schneidet schneiden taglia реж* нареза* 切菜 切る 切って 자르 썰
pour: pours pouring poured echa echando vierte vertiendo verse verser giesst eingiessen despeja derrama versa
 наливает налива* 倒水 注ぐ 注い 붓 따르
wash: rinse washing lava lavando lave laver wascht waescht lavare мое* мыть помыва* 洗 洗う 씻 설거지
clean: wipe tidy limpia limpiando nettoie putzt reinigt limpa pulisce убира* чист* 打扫 扫 掃除 拭 청소 닦
sweep: sweeping barre balaie fegt varre spazza подмета* 扫地 掃 쓸
repair: fix fixing mend repara reparando arregla repare reparer repariert conserta ripara чин* ремонт* починил* чинит* 修 修理 수리 고치
assemble: build construct monta arma assemble baut zusammen monta assembla собира* 组装 組み立て 조립
paint: painting pinta pintando peint malt dipinge красит* 绘画 画画 涂 塗 
fly: flying flies flew vuela volando vole fliegt steigen_lasst steigen_lassen voa vola лета* запуска* 飞 飛ば 날리
play: playing juega jugando joue spielt brinca gioca игра* 玩 遊 놀
dance: dancing baila danse tanzt danca balla танцу* 跳舞 踊 춤
sing: singing canta chante singt поет поёт 唱 歌 노래
read: reading lee leyendo leer liest lesen legge lendo чита* 读 看书 読 읽
write: writing escribe ecrit schreibt escreve scrive пиш* 写 書
talk: speak chat chatting talking speaking habla parle spricht fala parla говор* разговарива* 说话 聊天 話 말하 이야기
sell: selling vende vend verkauft продае* 卖 売
buy: purchase compra achete kauft купи* покупа* 买 買 구매
pay: paying paga paie zahlt плати* 付钱 支付 払 지불
enter: walk_in walks_in walked_in come_in comes_in came_in entra entrando betritt kommt_herein вход* заход* 进入 进来 走进 入る 들어
leave: exit exits go_out goes_out salir quitte verlasst sai esce выход* уход* 离开 出る 나가
rotate: spin spins spinning turn turns turning rota gira tourne dreht вращ* поворач* 转 旋转 回転 회전
still: motionless stationary immobile stays_still stay_still stay*_in_place stay*_put stands_still standing_still not_moving doesnt_move does_not_move
 didnt_move did_not_move doesnt_rotate does_not_rotate didnt_rotate did_not_rotate not_rotating no_rotation
 does_not_turn doesnt_turn quieto inmovil no_se_mueve ne_bouge_pas bewegt_sich_nicht parado fermo неподвиж*
 не_двига* 不动 静止 止まって 動かない 움직이지
clockwise: same_way_as_a_clock* same_way_a_clock* same_direction_as_a_clock* like_a_clock* like_the_hands_of_a_clock*
 same_way_as_the_clock* same_direction_as_the_clock*
 horario sens_horaire uhrzeigersinn im_uhrzeigersinn sentido_horario senso_orario по_часовой 顺时针 時計回り 시계방향
counterclockwise: anticlockwise counter_clockwise anti_clockwise opposite_to_a_clock* opposite_way_to_a_clock* opposite_direction_to_a_clock* opposite_of_a_clock* antihorario sens_antihoraire
 gegen_den_uhrzeigersinn sentido_anti-horario senso_antiorario против_часовой 逆时针 反時計回り 시계반대방향
sleep: asleep sleeping sleeps slept dozing dozes napping nap duerme durmiendo dormido dormida dort dormir dormant
 schlaft schlaeft schlafend dorme dormindo dormendo спит спящ* 睡觉 睡着 在睡 寝て 眠 자고 잠을 잡니다
fast: faster quick quickly quicker speed*_up accelerat* rapido rapida rapidamente schnell schneller plus_vite vite
 veloce piu_veloce быстр* 更快 速く 速い 빠르 빨리
slow: slower slowly slowing slows slowed decelerat* lento lenta lentamente langsam langsamer plus_lent lentement piu_lento
 медленн* 慢 更慢 遅 느리 천천히
move: moving moves moved go goes going heads heading travels traveling travelling se_mueve bouge bewegt_sich
 se_move si_muove движ* 移动 動い 움직
arrive: arrives arrived arriving coming come came approach approaches approaching pull_up pulls_up llega arrive
 ankommt kommt chega arriva приезжа* подъезжа* 来了 到着 来る 도착
stop: halt halts halted come*_to_a_stop came_to_a_stop se_detiene sarrete halt_an hält_an anhält parou
 si_ferma останавлива* останов* 停下 停止 止ま 止まる 멈추 멈춥
backward: backwards reverse reverses reversing reversed atras marcha_atras en_arriere ruckwarts ruckwaerts
 para_tras indietro назад 后退 倒车 後ろ 뒤로 후진
forward: forwards ahead adelante en_avant vorwarts vorwaerts para_frente avanti вперед 向前 前に 앞으로 전진
turn_on light: turn*_the_light_on turn*_the_lights_on switch*_the_light_on switch*_the_lights_on
turn_off light: turn*_the_light_off turn*_the_lights_off switch*_the_light_off switch*_the_lights_off
turn_on: turn*_on turn*_it_on switch*_on switch*_it_on enciende allume schaltet_ein macht_an liga accende включа* 打开灯 开灯 つけ 点け 켜
turn_off: turn*_off turn*_it_off switch*_off switch*_it_off apaga eteint schaltet_aus macht_aus desliga spegne выключа* 关灯 消し 끄
cook food: prepar*_a_meal prepar*_food prepar*_dinner prepar*_lunch prepar*_breakfast mak*_a_meal mak*_food mak*_dinner
 mak*_lunch mak*_breakfast cook*_a_meal cook*_food cook*_dinner 做饭 做菜 料理を作 요리를
food: meal meals +dinner +lunch +breakfast comida nourriture essen cibo еда 食物 食べ物 음식
happy: cheerful joyful glad delighted feliz contento contenta heureux heureuse glucklich
 froh felice счастлив* радост* довол* 开心 高兴 快乐 嬉し 楽し 幸せ 행복 기뻐
angry: mad furious anger annoyed irritated enojado enojada enfadado enfadada furioso en_colere fache wutend
 verargert zangado zangada arrabbiato arrabbiata злой злая злится сердит* 生气 愤怒 怒 화가 화난
sad: unhappy upset sorrowful gloomy triste tristes traurig грустн* печальн* 难过 伤心 悲伤 悲し 슬프 슬퍼
surprised: surprise shocked astonished amazed startled sorprendido sorprendida surpris uberrascht
 surpreso surpresa sorpreso sorpresa удивл* 惊讶 吃惊 驚 놀라
afraid: scared frightened fearful fear asustado asustada effraye effrayee peur angst verangstigt assustado
 spaventato испуга* боит* 害怕 恐 怖 무서 두려
rain: rainy raining 비가 rainfall lluvia lluvioso llueve pluie pluvieux pleut regen regnerisch regnet chuva chuvoso
 chove pioggia piovoso piove дожд* 下雨 雨 비가 
snow: snowy snowing nieve nevando neige neigeux schnee schneit neve снег* снеж* 下雪 雪 눈이
sun: sunny sunshine soleado sol_brilla ensoleille sonnig ensolarado soleggiato солнечн* 晴 阳光 晴れ 맑
cloud: cloudy overcast nublado nuageux bewolkt nublado nuvoloso облачн* 多云 曇 흐림 흐린
sphere: spherical ball_shaped globe esfera sphere sfera шар* 球体 球形
cube: cubic cube_shaped box_shaped cubo wurfel wuerfel куб* 立方体 正方体 정육면체
cylinder: cylindrical tube can_shaped cilindro cylindre zylinder цилиндр* 圆柱 円柱 원기둥
red: rojo roja rouge rot vermelho vermelha rosso rossa красн* 红 紅 赤 빨간 빨강
blue: azul bleu bleue blau blu синий синяя синее голуб* 蓝 藍 파란 파랑
green: verde vert verte grun gruen зелен* зелён* 绿 緑 초록 녹색
yellow: amarillo amarilla jaune gelb amarelo giallo желт* жёлт* 黄 노란 노랑
black: negro negra noir noire schwarz preto nero черн* чёрн* 黑 黒 검은 검정
white: blanco blanca blanc blanche weiss branco bianco бел* 白色 白的 흰 하얀
under: below beneath underneath debajo bajo sous unter embaixo sotto под 下面 底下 아래 밑
left: leftward leftwards izquierda gauche links esquerda sinistra левой левую слева налево 左 왼쪽
right_side: rightward rightwards derecha droite rechts direita destra правой правую справа направо 右 오른쪽
confused: puzzled perplexed baffled bewildered confundido confuso verwirrt confus растерян* 困惑 迷惑 당황
noon: midday mediodia midi mittag meio-dia mezzogiorno полдень 中午 正午 昼 정오
police: cop cops policeman policemen policewoman policia policier polizist polizei polizia полиц* 警察 경찰
airplane: plane aeroplane jet avion aereo aviao flugzeug aeroplano самолет* самолёт* 飞机 飛行機 비행기
daughter: hija sa_fille tochter filha figlia доч* 女儿 娘 딸
give: hand*_over regala donne gibt schenkt da_a entrega дари* отда* 送给 给了 交给 あげ 渡 주었 줬
toward: towards closer nearer hacia vers
same: equal equally identical igual gleich mesmo stesso одинаков* 一样 相同 同じ 같은
speed: pace velocidad vitesse geschwindigkeit velocidade velocita скорост* 速度 속도
zoom_out: zoom*_out pull*_back pull*_out widen* wider 拉远 ズームアウト 줌아웃
zoom_in: zoom*_in push*_in tighter 拉近 ズームイン 줌인
"""

_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af]")
#: verbs whose particle may follow the object (``picks the cup up``, ``switches the light on``): the concept, and
#: the words between kept
_SPLIT_VERBS = [(re.compile(rf"\b{verb}\w*\s+((?:(?!{particle}\b)\w+\s+){{1,3}}?){particle}\b"), concept)
                for verb, particle, concept in (("pick", "up", "pick_up"), ("put", "down", "put_down"),
                                                ("set", "down", "put_down"), ("turn", "on", "turn_on"),
                                                ("switch", "on", "turn_on"), ("turn", "off", "turn_off"),
                                                ("switch", "off", "turn_off"), ("take", "out", "take_out"),
                                                ("throw", "away", "throw"), ("cierr", "con llave", "lock"),
                                                ("schliess", "ab", "lock"), ("sperr", "ab", "lock"),
                                                ("sperr", "zu", "lock"), ("mach", "auf", "open"),
                                                ("mach", "zu", "clos"))]
_NO_CONCEPT = {"kind_of": "", "sort_of": "", "a_lot_of": "", "in_front_of": "front", "on_top_of": "top"}

#: a yes or a no standing as an answer, in the languages of the table and a few more
YES = frozenset("""yes yeah yep yup sure si sí oui ja sim да 是 是的 对 對 有 はい ええ 네 예 evet tak ano""".split())
NO = frozenset("""no nope nah non nein nao não нет 不 不是 没有 沒有 否 いいえ 아니요 아니오 아뇨 hayir hayır nie ne""".split())

#: words too general to stand for an option alone (``"In the room"`` is not ``"in the living room"``)
GENERIC = frozenset({"room", "place", "thing", "object", "area", "side", "way", "stuff", "item", "part", "spot",
                     "space", "something", "on", "in", "up", "down", "out", "off"})

#: little words that tell options apart only where nothing else does (``"Zooming in"`` / ``"Zooming out"``)
PARTICLES = frozenset({"in", "out", "up", "down", "on", "off"})

#: words that carry no content here (English function words and the words of every answer)
STOPWORDS = frozenset("""a an the is are was were be been being am in on of to and or it its this that these those he
she they we you i me him his her their them with at by for from video clip person someone answer option correct
think there here some any just very also like looks look seems seem appears while who which what when where how do does
did has have had can could would should will may might must as into onto out then than one ones thing something
whole time all each both so well yes shown showing scene anything everything nothing somewhere anywhere because since
probably likely maybe perhaps possibly definitely clearly certainly apparently actually really guess believe say
first finally initially later
el la los las un una unos unas del al en por para y est esta estan fue se lo le les su sus que ella ellos
une des du et ou sont il elle ils elles ce cette sa ses qui dans sur avec
der dem des ein eine einen einem einer und oder ist sind er sie es mit auf im am zu vom zum zur aus bei
os um uma do da dos das em no na nos nas ele ela com
lo gli uno di della sono lui lei per che het een hij zij op
и в на с он она они это что
theres thats whats heres hes shes theyre im ive id youre lets""".split())

#: negation in every language of the table: a clause that has one denies what it names
_NEGATION = re.compile(r"(?i)\b(?:not|no|never|neither|nor|none|nothing|nobody|without|isnt|arent|wasnt|werent|"
                       r"doesnt|dont|didnt|cannot|cant|wont|ne|pas|jamais|nicht|kein\w*|nie|nao|nem|non|nunca|"
                       r"не|нет|ни)\b|n't|[不没沒未别別无無非]|ない|ません|なかった|안\s|않|못|없")
#: English contractions, so ``doesn't move`` reads as ``doesnt move``
_APOSTROPHE = re.compile(r"[’'`´]")


def stem(word: str) -> str:
    """A crude English stem, the same for a word's inflections: ``closes``/``closing``/``closed``/``close`` ->
    ``clos``, ``running`` -> ``run``, ``bikes`` -> ``bik``."""
    word = _IRREGULAR.get(word, word)
    for suffix in ("ing", "es", "ed", "s"):
        if len(word) > len(suffix) + 2 and word.endswith(suffix):
            word = word[: -len(suffix)]
            if len(word) > 2 and word[-1] == word[-2] and word[-1] not in "aeiouls":
                word = word[:-1]
            break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


_IRREGULAR = {"men": "man", "women": "woman", "children": "child", "people": "person", "fell": "fall",
              "fallen": "fall", "ran": "run", "sat": "sit", "stood": "stand", "rode": "ride", "ridden": "ride",
              "drove": "drive", "driven": "drive", "threw": "throw", "thrown": "throw", "caught": "catch",
              "held": "hold", "ate": "eat", "eaten": "eat", "drank": "drink", "drunk": "drink", "sang": "sing",
              "sung": "sing", "wrote": "write", "written": "write", "spoke": "speak", "spoken": "speak",
              "sold": "sell", "bought": "buy", "paid": "pay", "left": "left", "knives": "knife", "went": "go",
              "took": "take", "taken": "take", "put": "put", "cut": "cut", "shut": "shut", "hit": "hit",
              "spun": "spin", "built": "build", "flies": "fly", "flew": "fly", "fixed": "fix", "mice": "mouse", "feet": "foot", "teeth": "tooth",
              "geese": "goose", "leaves": "leaf", "dishes": "dish", "boxes": "box", "buses": "bus", "glasses": "glass"}


def _fold(text: str) -> str:
    """Lower case; Latin accents dropped (``promène`` -> ``promene``, ``Kühlschrank`` -> ``kuhlschrank``); other
    scripts kept as they are."""
    text = text.lower().replace("ß", "ss").replace("ё", "е")
    if text.isascii():
        return text
    return "".join(unicodedata.normalize("NFKD", ch)[0] if "\u00c0" <= ch <= "\u024f" else ch for ch in text)


@lru_cache(maxsize=1)
def _index() -> tuple[dict, dict, re.Pattern, re.Pattern, dict, frozenset, tuple[str, ...]]:
    """The table as lookups, built once: ``(words, stems, latin phrases, cjk phrases, phrase concepts, first words
    of the latin phrases, first-word stems of the latin phrases)``."""
    words: dict[str, tuple[str, ...]] = {}
    stems: dict[str, tuple[str, ...]] = {}
    phrases: dict[str, tuple[str, ...]] = {}
    lines = re.sub(r"\n ", " ", _TABLE.strip()).splitlines()
    for line in lines:
        name, forms = line.split(":", 1)
        concept = tuple(w if "_" in w else stem(w) for w in name.split())
        if name == "right_side":
            concept = ("right",)
        for form in [name, *forms.split()] if name not in {"right_side", "climate change"} else forms.split():
            form = _fold(form)
            if form.startswith("+"):  # a kind of the concept, which keeps its own identity: carrot -> carrot, vegetable
                form = form[1:]
                words[form] = words[stem(form)] = (stem(form), *concept)
                continue
            if "_" in form or "-" in form or _CJK.search(form):
                phrases[form.replace("_", " ").replace("-", " ")] = concept
            elif form.endswith("*"):
                stems[form[:-1]] = concept
            else:
                words[form] = concept
                words.setdefault(stem(form), concept)
    for phrase, replacement in _NO_CONCEPT.items():
        phrases[phrase.replace("_", " ")] = (replacement,) if replacement else ()
    latin = sorted((p for p in phrases if not _CJK.search(p)), key=len, reverse=True)
    cjk = sorted((p for p in phrases if _CJK.search(p)), key=len, reverse=True)

    def alternative(p: str, gap: str) -> str:
        return re.escape(p).replace(r"\*", r"\w*").replace(r"\ ", gap)

    latin_pattern = re.compile(r"(?<!\w)(?:" + "|".join(alternative(p, r"[\s-]+") for p in latin) + r")(?!\w)")
    cjk_pattern = re.compile("|".join(alternative(p, r"\s+") for p in cjk))
    keyed = {p.replace("*", ""): c for p, c in phrases.items()}
    _STARRED.update(p.replace("*", "") for p in phrases if "*" in p)
    firsts = [p.split(" ", 1)[0] for p in latin]
    return (words, stems, latin_pattern, cjk_pattern, keyed, frozenset(f for f in firsts if not f.endswith("*")),
            tuple(sorted({f[:-1] for f in firsts if f.endswith("*")})))


def _phrase_concept(found: str, keyed: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    found = re.sub(r"[\s-]+", " ", found)
    if found in keyed:
        return keyed[found]
    for phrase, concept in keyed.items():  # a phrase with a stem (``воздушн* зме*``)
        if phrase not in _STARRED:
            continue
        parts = phrase.split(" ")
        if len(parts) == len(found.split(" ")) and all(w.startswith(p) for w, p in zip(found.split(" "), parts)):
            return concept
    return ()


def _word_concepts(word: str, words: dict, stems: dict) -> tuple[str, ...]:
    if word in words:
        return words[word]
    key = stem(word)
    if key in words:
        return words[key]
    for k in range(len(word), 2, -1):
        if word[:k] in stems:
            return stems[word[:k]]
    return (key,)


_STARRED: set[str] = set()  # the phrases of the table with a stem (filled by _index)
_SPLIT_VERB_WORDS = ("pick", "put", "set", "turn", "switch", "take", "throw", "cierr", "schliess", "sperr", "mach")
#: French and Italian elision: ``l'homme`` is ``l homme``
_ELISION = re.compile(r"\b([ldnjcsmt]|qu)['’](?=\w)")


@lru_cache(maxsize=8192)
def read(text: str) -> tuple[frozenset[str], bool]:
    """``(concepts, negated)``: the concepts ``text`` names (its content words read through the table, without
    function words), and whether it is negated in any language of the table (phrases such as ``does not move``,
    which name a concept of their own, set aside first)."""
    words, stems, latin, cjk, keyed, firsts, first_stems = _index()
    text = _APOSTROPHE.sub("", _ELISION.sub(r"\1 ", _fold(text)))
    found: set[str] = set()

    def take(m: re.Match) -> str:
        found.update(c for c in _phrase_concept(m.group(0), keyed) if c)
        return " "

    tokens = re.findall(r"\w+", text)
    if any(t in firsts or t.startswith(first_stems) for t in tokens):
        text = latin.sub(take, text)
    if _CJK.search(text):
        text = cjk.sub(take, text)
    if any(verb in text for verb in _SPLIT_VERB_WORDS):
        for pattern, concept in _SPLIT_VERBS:
            text, n = pattern.subn(lambda m: f" {m.group(1)} ", text)
            if n:
                found.add(concept)
    for word in re.findall(r"\w+", text):
        if word in PARTICLES:
            found.add(word)
            continue
        if word in STOPWORDS or word.isdigit() or _CJK.search(word) or _NEGATION.fullmatch(word):
            continue
        found.update(c for c in _word_concepts(word, words, stems) if c not in STOPWORDS)
    return frozenset(found), _NEGATION.search(text) is not None


def concepts(text: str) -> set[str]:
    """The concepts ``text`` names (:func:`read`)."""
    return set(read(text)[0])


def negated(clause: str) -> bool:
    """Whether a clause is negated (:func:`read`)."""
    return read(clause)[1]
