from training.export.main import main

raise SystemExit(main())
