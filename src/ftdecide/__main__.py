from ftdecide._entry import run

run()
