from ftdecide.cli import main

main()
