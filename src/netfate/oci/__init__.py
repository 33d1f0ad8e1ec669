"""OCI images for the container flavour: building the catalogue's images (build), checking an
image before anything of it is unpacked (layers, layout), and the node's local image store
(store). The formats are the OCI image spec's (image-layout, manifest, config, layer tars),
as podman, buildah, skopeo and umoci write them."""
