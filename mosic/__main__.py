from mosic.cli import main

raise SystemExit(main())
