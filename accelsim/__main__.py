"""``python -m accelsim`` (and ``torchrun -m accelsim``) runs the console command."""
from accelsim.app.cli import main

if __name__ == "__main__":
    main()
