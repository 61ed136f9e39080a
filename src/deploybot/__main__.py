from deploybot.cli import main

main()
