from bai.coordinator.main import main

raise SystemExit(main())
