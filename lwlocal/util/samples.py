"""Sample prose for measuring a tokenizer's tokens per word (written for this project)."""

ENGLISH = """\
The old harbour town wakes slowly. Fishing boats come in before the sun has cleared the hills,
and the market fills with crates of sardines, octopus and silver bream. By nine the cafes are
busy with people reading newspapers over strong coffee and custard tarts. Visitors often start
at the castle, climbing the narrow lanes where laundry hangs between balconies and tiled walls
shine blue and yellow. In the afternoon the light turns golden; trams rattle down to the river,
and the long waterfront fills with cyclists, street musicians and families walking their dogs.
Evenings belong to small restaurants where grilled fish, green wine and slow conversation last
well past midnight, and to the melancholy songs that drift out of doorways in the old quarter.
"""

CHINESE = """\
清晨的港口小城慢慢醒来。渔船在太阳越过山丘之前靠岸，市场里堆满了沙丁鱼、章鱼和银色的鲷鱼。
九点钟，咖啡馆里坐满了看报纸的人，他们喝着浓咖啡，吃着蛋挞。游客们常常从城堡开始游览，
沿着狭窄的小巷向上走，阳台之间晾着衣服，墙上的瓷砖闪着蓝色和黄色的光。下午，阳光变成金色，
电车叮当作响地开向河边，长长的河岸上满是骑车的人、街头音乐家和遛狗的家庭。夜晚属于小餐馆，
烤鱼、青酒和悠长的谈话一直持续到午夜之后，老城区的门口飘出忧伤的歌声。
"""
