from ftdecide.cli import run

run()
